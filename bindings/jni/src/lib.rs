//! JNI glue for the Kotlin binding (`android/sod2`, package `dev.sod2`).
//!
//! Handles are `jlong`s from the live-handle registries of `sod2-bindings-common` (one per
//! handle type), so a closed, forged or wrong-typed handle raises `InvalidHandleException`
//! instead of being dereferenced. Every entry point runs under `catch_unwind`; errors and
//! panics become Kotlin exceptions, never a crash: the class is the Kotlin column of the error
//! table shared with the C and Swift bindings (`sod2_bindings_common::KINDS`), and
//! `Native.errorClasses` hands that column to the Kotlin tests. On Android, `log` goes to
//! logcat (tag `sod2`) through `android_logger`, installed once by `JNI_OnLoad`.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::c_void;
use std::sync::{Arc, Once};

use jni::objects::{
    JByteArray, JByteBuffer, JClass, JIntArray, JLongArray, JObject, JObjectArray, JString,
};
use jni::sys::{jint, jlong, jobjectArray, JNI_VERSION_1_6};
use jni::JNIEnv;
use sod2_bindings_common::{catch_panics, ErrorKind, Registry};
use sod2_runtime::{DType, Plan, RuntimeError, Session, TensorIn};

/// A failure: its kind (which selects the Kotlin exception) and message.
struct Error(sod2_bindings_common::Error);

fn err(kind: ErrorKind, msg: impl Into<String>) -> Error {
    Error(sod2_bindings_common::Error::new(kind, msg))
}

impl From<sod2_bindings_common::Error> for Error {
    fn from(e: sod2_bindings_common::Error) -> Self {
        Error(e)
    }
}

impl From<RuntimeError> for Error {
    fn from(e: RuntimeError) -> Self {
        Error(e.into())
    }
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        err(ErrorKind::InvalidArgument, format!("JNI: {e}"))
    }
}

/// The Kotlin package of the exception classes, as a JNI class path prefix.
const PACKAGE: &str = "dev/sod2/";

/// The JNI class path of the exception an error kind raises (`dev/sod2/<kotlin_class>`).
fn exception_class(kind: ErrorKind) -> String {
    format!("{PACKAGE}{}", kind.names().kotlin_class)
}

struct ModelHandle {
    plan: Arc<Plan>,
}

struct SessionHandle {
    session: Session,
}

/// Live model handles.
static MODELS: Registry<ModelHandle> = Registry::new();
/// Live session handles.
static SESSIONS: Registry<SessionHandle> = Registry::new();

fn throw(env: &mut JNIEnv<'_>, e: Error) {
    let Error(e) = e;
    if env.throw_new(exception_class(e.kind), &e.msg).is_err() {
        let _ = env.throw_new("java/lang/RuntimeException", &e.msg);
    }
}

/// Runs `f`; on error or panic throws and returns `fallback`.
fn guarded<'l, T>(
    env: &mut JNIEnv<'l>,
    fallback: T,
    f: impl FnOnce(&mut JNIEnv<'l>) -> Result<T, Error>,
) -> T {
    match catch_panics(|| f(env)) {
        Ok(v) => v,
        Err(e) => {
            throw(env, e);
            fallback
        }
    }
}

fn handle<T>(p: *mut T) -> jlong {
    p as jlong
}

fn model<'a>(h: jlong) -> Result<&'a ModelHandle, Error> {
    // SAFETY: models are immutable, so shared access from any thread is sound; the Kotlin
    // `Sod2Model` frees its handle only in `close`, which is synchronized with `newSession`.
    unsafe { MODELS.get(h as *const ModelHandle) }
        .ok_or_else(|| err(ErrorKind::InvalidHandle, "the model is closed or invalid"))
}

fn session<'a>(h: jlong) -> Result<&'a mut SessionHandle, Error> {
    // SAFETY: the Kotlin `Session` is documented as single-threaded and its methods (close
    // included) are synchronized, so no other reference is in use.
    unsafe { SESSIONS.get_mut(h as *mut SessionHandle) }
        .ok_or_else(|| err(ErrorKind::InvalidHandle, "the session is closed or invalid"))
}

/// Set once the logger is installed (or, off Android, once the load message is logged).
static LOGGING: Once = Once::new();

/// Routes `log` to logcat under the tag `sod2` (Android only; elsewhere `log` stays a no-op
/// unless the host installs a logger), once per process however often it is called.
fn init_logging() {
    LOGGING.call_once(|| {
        #[cfg(target_os = "android")]
        android_logger::init_once(
            android_logger::Config::default()
                .with_max_level(log::LevelFilter::Info)
                .with_tag("sod2"),
        );
        log::info!("sod2 {} native library loaded", env!("CARGO_PKG_VERSION"));
    });
}

/// Called by the JVM (ART on Android) when `System.loadLibrary("sod2_jni")` loads this library,
/// before any other entry point: installs the logger. A panic is caught (it must not unwind
/// into the VM) and only costs the logger.
#[no_mangle]
pub extern "system" fn JNI_OnLoad(_vm: *mut jni::sys::JavaVM, _reserved: *mut c_void) -> jint {
    let _ = std::panic::catch_unwind(init_logging);
    JNI_VERSION_1_6
}

/// Loads a plan file; returns a model handle.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_modelLoad<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    path: JString<'l>,
) -> jlong {
    guarded(&mut env, 0, |env| {
        if path.is_null() {
            return Err(err(ErrorKind::InvalidArgument, "path is null"));
        }
        let p: String = env.get_string(&path)?.into();
        let plan = Plan::load(std::path::Path::new(&p))?;
        Ok(handle(MODELS.insert(ModelHandle { plan })))
    })
}

/// Loads a plan from bytes (an APK asset); returns a model handle.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_modelFromBytes<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    bytes: JByteArray<'l>,
) -> jlong {
    guarded(&mut env, 0, |env| {
        if bytes.is_null() {
            return Err(err(ErrorKind::InvalidArgument, "bytes is null"));
        }
        let v = env.convert_byte_array(&bytes)?;
        let plan = Plan::from_bytes(&v)?;
        Ok(handle(MODELS.insert(ModelHandle { plan })))
    })
}

/// Frees a model handle (sessions keep the plan alive).
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_modelClose<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
) {
    guarded(&mut env, (), |_| {
        // Closing a closed handle is harmless (Kotlin zeroes its handle on close anyway).
        drop(MODELS.remove(h as *mut ModelHandle));
        Ok(())
    })
}

/// Input (`outputs` = false) or output names.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_modelNames<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
    outputs: jni::sys::jboolean,
) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let m = model(h)?;
        let io = if outputs != 0 {
            m.plan.outputs()
        } else {
            m.plan.inputs()
        };
        let arr = env.new_object_array(io.len() as i32, "java/lang/String", JObject::null())?;
        for (i, x) in io.iter().enumerate() {
            let s = env.new_string(&x.name)?;
            env.set_object_array_element(&arr, i as i32, s)?;
        }
        Ok(arr.into_raw())
    })
}

/// Creates a session over a model.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionCreate<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        let m = model(h)?;
        Ok(handle(SESSIONS.insert(SessionHandle {
            session: Session::new(m.plan.clone()),
        })))
    })
}

/// Frees a session handle.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionClose<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
) {
    guarded(&mut env, (), |_| {
        drop(SESSIONS.remove(h as *mut SessionHandle));
        Ok(())
    })
}

fn shapes_of(env: &mut JNIEnv<'_>, shapes: &JObjectArray<'_>) -> Result<Vec<Vec<usize>>, Error> {
    let n = env.get_array_length(shapes)?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let a: JLongArray<'_> = env.get_object_array_element(shapes, i)?.into();
        if a.is_null() {
            return Err(err(
                ErrorKind::InvalidArgument,
                format!("shape {i} is null"),
            ));
        }
        let len = env.get_array_length(&a)?;
        let mut v = vec![0i64; len as usize];
        env.get_long_array_region(&a, 0, &mut v)?;
        if v.iter().any(|&d| d < 0) {
            return Err(err(
                ErrorKind::InvalidArgument,
                format!("shape {i} has a negative dim"),
            ));
        }
        out.push(v.into_iter().map(|d| d as usize).collect());
    }
    Ok(out)
}

/// Binds the symbols for these input shapes; returns the arena size in bytes.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionPrepare<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
    shapes: JObjectArray<'l>,
) -> jlong {
    guarded(&mut env, 0, |env| {
        let s = session(h)?;
        let shapes = shapes_of(env, &shapes)?;
        Ok(s.session.prepare(&shapes)? as jlong)
    })
}

/// Runs the model. Inputs: dtype codes, shapes, direct `ByteBuffer`s (read in place).
/// Returns `[dtypes int[], shapes long[][], data byte[][]]` of the outputs.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionRun<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
    dtypes: JIntArray<'l>,
    shapes: JObjectArray<'l>,
    buffers: JObjectArray<'l>,
) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = session(h)?;
        let n = env.get_array_length(&dtypes)? as usize;
        let mut codes = vec![0i32; n];
        env.get_int_array_region(&dtypes, 0, &mut codes)?;
        let dims = shapes_of(env, &shapes)?;
        if dims.len() != n || env.get_array_length(&buffers)? as usize != n {
            return Err(err(
                ErrorKind::InvalidArgument,
                "dtypes, shapes and buffers differ in length",
            ));
        }
        let mut views: Vec<(DType, &[u8])> = Vec::with_capacity(n);
        for (i, &code) in codes.iter().enumerate() {
            let dt = u8::try_from(code)
                .ok()
                .and_then(DType::from_code)
                .ok_or_else(|| {
                    err(
                        ErrorKind::InvalidArgument,
                        format!("input {i}: unknown dtype code {code}"),
                    )
                })?;
            let b: JByteBuffer<'_> = env.get_object_array_element(&buffers, i as i32)?.into();
            if b.is_null() {
                return Err(err(
                    ErrorKind::InvalidArgument,
                    format!("input {i}: buffer is null"),
                ));
            }
            let ptr = env.get_direct_buffer_address(&b).map_err(|_| {
                err(
                    ErrorKind::InvalidArgument,
                    format!("input {i}: not a direct ByteBuffer (use ByteBuffer.allocateDirect)"),
                )
            })?;
            let cap = env.get_direct_buffer_capacity(&b)?;
            // SAFETY: the JVM guarantees `cap` bytes at the address of a live direct buffer; the
            // Kotlin caller holds the buffer (it is in `buffers`) for the duration of this call.
            let data = unsafe { std::slice::from_raw_parts(ptr, cap) };
            views.push((dt, data));
        }
        let tensors: Vec<TensorIn<'_>> = views
            .iter()
            .zip(&dims)
            .map(|((dt, d), dim)| TensorIn::raw(*dt, d, dim))
            .collect();
        let outs = s.session.run(&tensors)?;
        // Results: Object[] { int[] dtypes, long[][] shapes, byte[][] data }
        let dt_arr = env.new_int_array(outs.len() as i32)?;
        let codes: Vec<i32> = outs.iter().map(|o| o.dtype as i32).collect();
        env.set_int_array_region(&dt_arr, 0, &codes)?;
        let sh_arr = env.new_object_array(outs.len() as i32, "[J", JObject::null())?;
        let da_arr = env.new_object_array(outs.len() as i32, "[B", JObject::null())?;
        for (i, o) in outs.iter().enumerate() {
            let d: Vec<i64> = o.dims.iter().map(|&x| x as i64).collect();
            let la = env.new_long_array(d.len() as i32)?;
            env.set_long_array_region(&la, 0, &d)?;
            env.set_object_array_element(&sh_arr, i as i32, la)?;
            let ba = env.byte_array_from_slice(&o.data)?;
            env.set_object_array_element(&da_arr, i as i32, ba)?;
        }
        let res = env.new_object_array(3, "java/lang/Object", JObject::null())?;
        env.set_object_array_element(&res, 0, dt_arr)?;
        env.set_object_array_element(&res, 1, sh_arr)?;
        env.set_object_array_element(&res, 2, da_arr)?;
        Ok(res.into_raw())
    })
}

/// Sets the session's intra-op thread count.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionSetThreads<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
    threads: jni::sys::jint,
) {
    guarded(&mut env, (), |_| {
        let n = usize::try_from(threads).map_err(|_| {
            err(
                ErrorKind::InvalidArgument,
                format!("{threads} threads: expected 1..=256"),
            )
        })?;
        session(h)?.session.set_threads(n)?;
        Ok(())
    })
}

/// Limits the memory the session may hold to `bytes` (`0`: the system's available memory).
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionSetMemoryLimit<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
    bytes: jlong,
) {
    guarded(&mut env, (), |_| {
        let limit = usize::try_from(bytes).map_err(|_| {
            err(
                ErrorKind::InvalidArgument,
                format!("memory limit {bytes}: expected 0 (the default) or more bytes"),
            )
        })?;
        session(h)?
            .session
            .set_memory_limit((limit != 0).then_some(limit));
        Ok(())
    })
}

/// Caps the kernels' working memory, process-wide, at `bytes` (`0`: no cap, the default); see
/// `sod2_set_kernel_memory_limit` in the C API.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_setKernelMemoryLimit<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    bytes: jlong,
) {
    guarded(&mut env, (), |_| {
        let limit = usize::try_from(bytes).map_err(|_| {
            err(
                ErrorKind::InvalidArgument,
                format!(
                    "kernel memory limit {bytes}: expected 0 (no cap, the default) or more bytes"
                ),
            )
        })?;
        sod2_runtime::set_kernel_memory_limit((limit != 0).then_some(limit));
        Ok(())
    })
}

/// The arena size after the last prepare.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_sessionArenaBytes<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        Ok(session(h)?.session.arena_bytes() as jlong)
    })
}

/// Library version.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_version<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jni::sys::jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        Ok(env.new_string(env!("CARGO_PKG_VERSION"))?.into_raw())
    })
}

/// The exception class of every error kind, in the order of `sod2_bindings_common::KINDS`, as
/// JNI class paths (`dev/sod2/PlanException`): the Kotlin tests check each one exists and
/// extends `Sod2Exception`.
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_errorClasses<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let kinds: Vec<ErrorKind> = ErrorKind::all().collect();
        let arr = env.new_object_array(kinds.len() as i32, "java/lang/String", JObject::null())?;
        for (i, k) in kinds.into_iter().enumerate() {
            let s = env.new_string(exception_class(k))?;
            env.set_object_array_element(&arr, i as i32, s)?;
        }
        Ok(arr.into_raw())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sod2_bindings_common::{kind, sample_errors, variant_name, KINDS};

    #[test]
    fn every_runtime_error_raises_its_table_exception() {
        let want = [
            ("Io", "dev/sod2/IoException"),
            ("Format", "dev/sod2/PlanException"),
            ("UnknownKernel", "dev/sod2/PlanException"),
            ("Threads", "dev/sod2/RunException"),
            ("InputCount", "dev/sod2/InputException"),
            ("InputRank", "dev/sod2/InputException"),
            ("InputDtype", "dev/sod2/InputException"),
            ("InputDim", "dev/sod2/InputException"),
            ("OutOfRange", "dev/sod2/InputException"),
            ("OutsideDomain", "dev/sod2/InputException"),
            ("InputValue", "dev/sod2/InputException"),
            ("InputSize", "dev/sod2/InputException"),
            ("Kernel", "dev/sod2/RunException"),
            ("OutOfMemory", "dev/sod2/InputException"),
            ("Eval", "dev/sod2/RunException"),
        ];
        let mut got = Vec::new();
        for e in sample_errors() {
            let (name, row, msg) = (variant_name(&e), kind(&e).names(), e.to_string());
            // The path `throw` takes: RuntimeError -> Error (via `?`) -> class and message.
            let Error(x) = Error::from(e);
            let class = exception_class(x.kind);
            assert_eq!(class, format!("dev/sod2/{}", row.kotlin_class), "{name}");
            assert_eq!(x.msg, msg);
            got.push((name, class));
        }
        let want: Vec<(&str, String)> = want.iter().map(|&(v, c)| (v, c.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_panic_raises_internal_exception() {
        let r: Result<(), Error> = catch_panics(|| panic!("boom"));
        let Err(Error(e)) = r else { panic!("no error") };
        assert_eq!(exception_class(e.kind), "dev/sod2/InternalException");
        assert_eq!(e.msg, "internal error (caught panic): boom");
    }

    /// The Kotlin sources define every class of the table as a `Sod2Exception` (the JUnit test
    /// checks the compiled classes; this catches a missing one without Maven).
    #[test]
    fn the_kotlin_sources_define_every_table_exception() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../android/sod2/src/main/kotlin/dev/sod2"
        );
        let mut src = String::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "kt") {
                src += &std::fs::read_to_string(p).unwrap();
            }
        }
        for r in KINDS {
            let decl = format!(
                "class {}(message: String) : Sod2Exception(message)",
                r.kotlin_class
            );
            assert!(src.contains(&decl), "missing in {dir}: {decl}");
        }
    }

    #[test]
    fn jni_on_load_installs_logging_once_and_returns_a_supported_version() {
        assert_eq!(
            JNI_OnLoad(std::ptr::null_mut(), std::ptr::null_mut()),
            JNI_VERSION_1_6
        );
        assert!(LOGGING.is_completed());
        // A second load (another class loader) is harmless: `call_once` does not run again.
        assert_eq!(
            JNI_OnLoad(std::ptr::null_mut(), std::ptr::null_mut()),
            JNI_VERSION_1_6
        );
    }

    #[test]
    fn handles_are_checked() {
        assert!(model(0).is_err());
        assert!(session(0).is_err());
        let mut forged = [0u64; 16];
        let h = forged.as_mut_ptr() as jlong;
        assert!(model(h).is_err());
        assert!(session(h).is_err());
        assert!(MODELS.remove(h as *mut ModelHandle).is_none());
    }
}
