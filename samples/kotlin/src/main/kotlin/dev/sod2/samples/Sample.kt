package dev.sod2.samples

import dev.sod2.Sod2Model
import dev.sod2.Tensor
import java.util.Locale
import kotlin.math.abs

/**
 * sod2 Kotlin sample: load a plan, run it at two input shapes, print a summary of every output.
 * Inputs are synthetic and deterministic (token ids (i*7)%97+2, attention mask 1), as in the
 * other samples, so scripts/samples/check.py can compare with `sod2 run`.
 */
fun main(args: Array<String>) {
    require(args.size == 1) { "usage: Sample MODEL.sod2" }
    Sod2Model.load(args[0]).use { model ->
        val arch = System.getProperty("os.arch")
        println("sod2 ${Sod2Model.version} on $arch: ${model.inputNames.size} inputs, ${model.outputNames.size} outputs")
        model.newSession().use { session ->
            for ((batch, seq) in listOf(1 to 7, 2 to 16)) {
                val n = batch * seq
                val shape = longArrayOf(batch.toLong(), seq.toLong())
                val outs = session.run(
                    listOf(
                        Tensor.ofLongs(shape, LongArray(n) { (it * 7L) % 97 + 2 }),
                        Tensor.ofLongs(shape, LongArray(n) { 1L }),
                    ),
                )
                println("shape batch=$batch seq=$seq arena_bytes=${session.arenaBytes()}")
                outs.forEachIndexed { k, t ->
                    val v = t.toFloatArray()
                    val sum = v.sumOf { it.toDouble() }
                    val meanAbs = v.sumOf { abs(it.toDouble()) } / v.size
                    println(
                        String.format(
                            Locale.ROOT, "output %d dims [%s] sum=%.6f mean_abs=%.6f first=%.6f",
                            k, t.shape.joinToString(", "), sum, meanAbs, v[0].toDouble(),
                        ),
                    )
                }
            }
        }
    }
}
