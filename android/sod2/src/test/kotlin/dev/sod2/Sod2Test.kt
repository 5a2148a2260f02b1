package dev.sod2

import java.io.File
import java.nio.ByteBuffer
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class Sod2Test {
    private val planPath: String = System.getProperty("sod2.plan") ?: error("set -Dsod2.plan")

    private fun inputs(batch: Int, seq: Int): List<Tensor> {
        val n = batch * seq
        val shape = longArrayOf(batch.toLong(), seq.toLong())
        return listOf(
            Tensor.ofLongs(shape, LongArray(n) { (it * 7L) % 97 + 2 }),
            Tensor.ofLongs(shape, LongArray(n) { 1L }),
        )
    }

    @Test
    fun runsAtTwoShapesFromPathAndFromBytes() {
        Sod2Model.load(planPath).use { model ->
            assertEquals(listOf("input_ids", "attention_mask"), model.inputNames)
            assertEquals(2, model.outputNames.size)
            model.newSession().use { s ->
                val a = s.run(inputs(1, 7))
                assertArrayEquals(longArrayOf(1, 7, 32), a[0].shape)
                val b = s.run(inputs(2, 16))
                assertArrayEquals(longArrayOf(2, 16, 32), b[0].shape)
                assertTrue(s.arenaBytes() > 0)
                Sod2Model.fromBytes(File(planPath).readBytes()).use { m2 ->
                    m2.newSession().use { s2 ->
                        assertArrayEquals(a[0].toFloatArray(), s2.run(inputs(1, 7))[0].toFloatArray())
                    }
                }
            }
        }
    }

    @Test
    fun threadedSessionsGiveTheSameOutputs() {
        Sod2Model.load(planPath).use { model ->
            model.newSession().use { one ->
                model.newSession().use { two ->
                    two.setThreads(2)
                    val a = one.run(inputs(4, 64))[0].toFloatArray()
                    val b = two.run(inputs(4, 64))[0].toFloatArray()
                    assertEquals(a.size, b.size)
                    for (i in a.indices) assertEquals(a[i], b[i], 1e-5f * (1f + Math.abs(a[i])))
                    val e = assertThrows<RunException> { two.setThreads(0) }
                    assertTrue(e.message!!.contains("0 threads"), e.message)
                }
            }
        }
    }

    @Test
    fun prepareReturnsTheArenaSize() {
        Sod2Model.load(planPath).use { m ->
            m.newSession().use { s ->
                val small = s.prepare(listOf(longArrayOf(1, 1), longArrayOf(1, 1)))
                val large = s.prepare(listOf(longArrayOf(8, 128), longArrayOf(8, 128)))
                assertTrue(large > small * 100)
            }
        }
    }

    @Test
    fun aShapePastTheMemoryLimitThrowsAndTheSessionLivesOn() {
        Sod2Model.load(planPath).use { m ->
            m.newSession().use { s ->
                val small = s.prepare(listOf(longArrayOf(1, 7), longArrayOf(1, 7)))
                s.setMemoryLimit(small)
                val e = assertThrows<InputException> { s.run(inputs(8, 128)) }
                assertTrue(e.message!!.contains("bytes, limit $small"), e.message)
                assertArrayEquals(longArrayOf(1, 7, 32), s.run(inputs(1, 7))[0].shape)
                s.setMemoryLimit(0)
                assertArrayEquals(longArrayOf(8, 128, 32), s.run(inputs(8, 128))[0].shape)
                assertThrows<InvalidArgumentException> { s.setMemoryLimit(-1) }
            }
        }
    }

    @Test
    fun aRunPastTheKernelMemoryCapThrowsAndRunsOnceLifted() {
        Sod2Model.load(planPath).use { m ->
            m.newSession().use { s ->
                // A fresh thread: its kernel buffers have not grown yet, so a one-byte cap refuses them.
                var refused: Throwable? = null
                Sod2Model.setKernelMemoryLimit(1)
                try {
                    val t = Thread { refused = runCatching { s.run(inputs(8, 128)) }.exceptionOrNull() }
                    t.start()
                    t.join()
                } finally {
                    Sod2Model.setKernelMemoryLimit(0)
                }
                val e = refused
                assertTrue(e is InputException, "want an InputException, got $e")
                assertTrue(e!!.message!!.contains("kernel scratch needs") && e.message!!.contains("bytes, limit 1"), e.message)
                assertArrayEquals(longArrayOf(8, 128, 32), s.run(inputs(8, 128))[0].shape)
                assertThrows<InvalidArgumentException> { Sod2Model.setKernelMemoryLimit(-1) }
            }
        }
    }

    @Test
    fun misuseRaisesTypedExceptionsWithMessages() {
        val e1 = assertThrows<IoException> { Sod2Model.load("/no/such/plan.sod2") }
        assertTrue(e1.message!!.contains("cannot read plan"), e1.message)
        val bytes = File(planPath).readBytes()
        bytes[200] = (bytes[200].toInt() xor 0x20).toByte()
        val e2 = assertThrows<PlanException> { Sod2Model.fromBytes(bytes) }
        assertTrue(e2.message!!.contains("checksum"), e2.message)

        val model = Sod2Model.load(planPath)
        val s = model.newSession()
        val good = inputs(1, 5)
        val e3 = assertThrows<InputException> { s.run(listOf(good[0])) }
        assertTrue(e3.message!!.contains("takes 2 inputs, 1 were given"), e3.message)
        val floats = Tensor.ofFloats(longArrayOf(1, 5), FloatArray(5))
        val e4 = assertThrows<InputException> { s.run(listOf(floats, good[1])) }
        assertEquals("input `input_ids`: element type f32, the model expects i64", e4.message)
        val tooBig = Tensor.ofLongs(longArrayOf(1, 999), LongArray(999) { 2 })
        val e5 = assertThrows<InputException> { s.run(listOf(tooBig, tooBig)) }
        assertTrue(e5.message!!.contains("outside the declared range 1..=128"), e5.message)
        val short = Tensor(DType.I64, longArrayOf(1, 5), ByteBuffer.allocateDirect(16))
        val e6 = assertThrows<InputException> { s.run(listOf(short, good[1])) }
        assertTrue(e6.message!!.contains("16 bytes given"), e6.message)
        assertThrows<InvalidArgumentException> { Tensor(DType.I64, longArrayOf(1), ByteBuffer.allocate(8)) }

        s.close()
        val e7 = assertThrows<InvalidHandleException> { s.run(good) }
        assertEquals("the session is closed", e7.message)
        s.close() // closing twice is harmless
        model.close()
        val e8 = assertThrows<InvalidHandleException> { model.newSession() }
        assertEquals("the model is closed", e8.message)
    }

    @Test
    fun everyErrorKindOfTheSharedTableHasItsExceptionClass() {
        // The table's Kotlin column, from the native library that raises these exceptions.
        val classes = Native.errorClasses()
        assertTrue(classes.isNotEmpty())
        assertEquals(classes.size, classes.toSet().size, classes.joinToString())
        for (path in classes) {
            val cls = Class.forName(path.replace('/', '.'))
            assertTrue(Sod2Exception::class.java.isAssignableFrom(cls), "$path extends Sod2Exception")
            assertTrue(cls != Sod2Exception::class.java, "$path is a kind, not the base class")
            // JNI's ThrowNew needs a (String) constructor.
            val e = cls.getConstructor(String::class.java).newInstance("msg") as Sod2Exception
            assertEquals("msg", e.message)
        }
    }

    /** The arm64 profile (`mvn -Parm64`) sets `sod2.expect.arch`: prove the tests ran on that JVM. */
    @Test
    fun runsOnTheArchitectureTheProfileAskedFor() {
        val want = System.getProperty("sod2.expect.arch")
        assumeTrue(!want.isNullOrEmpty(), "sod2.expect.arch is not set (only -Parm64 sets it)")
        assertEquals(want, System.getProperty("os.arch"))
    }

    /** The libsod2_jni this JVM mapped comes from java.library.path and is built for its arch. */
    @Test
    fun theLoadedNativeLibraryIsTheOneForThisJvm() {
        assertTrue(Sod2Model.version.isNotEmpty()) // loads the library
        val maps = File("/proc/self/maps")
        assumeTrue(maps.canRead(), "no /proc/self/maps (not Linux)")
        val mapped = maps.readLines()
            .filter { it.endsWith("/libsod2_jni.so") }
            .map { File(it.substring(it.indexOf('/'))) }
            .toSet()
        assertEquals(1, mapped.size, mapped.toString())
        val lib = mapped.first()
        val dir = File(System.getProperty("java.library.path")).canonicalFile
        assertEquals(dir, lib.canonicalFile.parentFile)
        val header = lib.inputStream().use { it.readNBytes(20) }
        assertEquals(listOf<Byte>(0x7f, 'E'.code.toByte(), 'L'.code.toByte(), 'F'.code.toByte()), header.take(4))
        val machine = (header[18].toInt() and 0xff) or ((header[19].toInt() and 0xff) shl 8)
        val elfArch = mapOf(62 to "amd64", 183 to "aarch64")[machine] ?: "ELF machine $machine"
        assertEquals(System.getProperty("os.arch"), elfArch)
    }
}
