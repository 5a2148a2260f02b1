//! JNI glue for the Kotlin binding (`android/sod2`, package `dev.sod2`).
//!
//! Handles are `jlong`s from `Box::into_raw`, checked against a registry of live handles, so a
//! closed or forged handle raises `InvalidHandleException` instead of being dereferenced. Every
//! entry point runs under `catch_unwind`; errors and panics become Kotlin exceptions
//! (`dev.sod2.*Exception`), never a crash. On Android, `log` goes to logcat through
//! `android_logger`.
#![deny(unsafe_op_in_unsafe_fn)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use jni::objects::{
    JByteArray, JByteBuffer, JClass, JIntArray, JLongArray, JObject, JObjectArray, JString,
};
use jni::sys::{jlong, jobjectArray};
use jni::JNIEnv;
use sod2_runtime::{DType, Plan, RuntimeError, Session, TensorIn};

/// Which Kotlin exception a failure raises.
enum Kind {
    InvalidArgument,
    InvalidHandle,
    Plan,
    Input,
    Run,
    Internal,
}

struct Error {
    kind: Kind,
    msg: String,
}

fn err(kind: Kind, msg: impl Into<String>) -> Error {
    Error {
        kind,
        msg: msg.into(),
    }
}

impl From<RuntimeError> for Error {
    fn from(e: RuntimeError) -> Self {
        let kind = match &e {
            RuntimeError::Io { .. }
            | RuntimeError::Format(_)
            | RuntimeError::UnknownKernel { .. } => Kind::Plan,
            RuntimeError::InputCount { .. }
            | RuntimeError::InputRank { .. }
            | RuntimeError::InputDtype { .. }
            | RuntimeError::InputDim { .. }
            | RuntimeError::OutOfRange { .. }
            | RuntimeError::InputSize { .. } => Kind::Input,
            RuntimeError::Kernel { .. } | RuntimeError::Eval(_) | RuntimeError::Threads(_) => {
                Kind::Run
            }
        };
        err(kind, e.to_string())
    }
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        err(Kind::InvalidArgument, format!("JNI: {e}"))
    }
}

fn live() -> &'static Mutex<Vec<usize>> {
    static LIVE: OnceLock<Mutex<Vec<usize>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(Vec::new()))
}

fn register(p: usize) -> jlong {
    live().lock().unwrap_or_else(|e| e.into_inner()).push(p);
    p as jlong
}

fn unregister(p: jlong) -> bool {
    let mut l = live().lock().unwrap_or_else(|e| e.into_inner());
    match l.iter().position(|&x| x == p as usize) {
        Some(i) => {
            l.swap_remove(i);
            true
        }
        None => false,
    }
}

fn check_live(p: jlong, what: &str) -> Result<(), Error> {
    if p != 0
        && live()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(p as usize))
    {
        Ok(())
    } else {
        Err(err(
            Kind::InvalidHandle,
            format!("{what} is closed or invalid"),
        ))
    }
}

struct ModelHandle {
    plan: Arc<Plan>,
}

struct SessionHandle {
    session: Session,
}

fn throw(env: &mut JNIEnv<'_>, e: Error) {
    let class = match e.kind {
        Kind::InvalidArgument => "dev/sod2/InvalidArgumentException",
        Kind::InvalidHandle => "dev/sod2/InvalidHandleException",
        Kind::Plan => "dev/sod2/PlanException",
        Kind::Input => "dev/sod2/InputException",
        Kind::Run => "dev/sod2/RunException",
        Kind::Internal => "dev/sod2/Sod2Exception",
    };
    if env.throw_new(class, &e.msg).is_err() {
        let _ = env.throw_new("java/lang/RuntimeException", &e.msg);
    }
}

/// Runs `f`; on error or panic throws and returns `fallback`.
fn guarded<'l, T>(
    env: &mut JNIEnv<'l>,
    fallback: T,
    f: impl FnOnce(&mut JNIEnv<'l>) -> Result<T, Error>,
) -> T {
    let r = catch_unwind(AssertUnwindSafe(|| f(env)));
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            throw(env, e);
            fallback
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            throw(
                env,
                err(
                    Kind::Internal,
                    format!("internal error (caught panic): {what}"),
                ),
            );
            fallback
        }
    }
}

fn model<'a>(h: jlong) -> Result<&'a ModelHandle, Error> {
    check_live(h, "the model")?;
    // SAFETY: live handles come from Box::into_raw in `Native.modelLoad*` and are unregistered
    // before being freed; models are immutable, so shared access from any thread is sound.
    Ok(unsafe { &*(h as *const ModelHandle) })
}

fn session<'a>(h: jlong) -> Result<&'a mut SessionHandle, Error> {
    check_live(h, "the session")?;
    // SAFETY: live (see `model`); the Kotlin `Session` is documented as single-threaded and its
    // methods are synchronized, so no other reference is in use.
    Ok(unsafe { &mut *(h as *mut SessionHandle) })
}

/// Sets up logging (logcat on Android).
#[no_mangle]
pub extern "system" fn Java_dev_sod2_Native_initLogging(_env: JNIEnv<'_>, _class: JClass<'_>) {
    #[cfg(target_os = "android")]
    android_logger::init_once(
        android_logger::Config::default()
            .with_max_level(log::LevelFilter::Info)
            .with_tag("sod2"),
    );
    log::info!("sod2 {} native library loaded", env!("CARGO_PKG_VERSION"));
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
            return Err(err(Kind::InvalidArgument, "path is null"));
        }
        let p: String = env.get_string(&path)?.into();
        let plan = Plan::load(std::path::Path::new(&p))?;
        Ok(register(
            Box::into_raw(Box::new(ModelHandle { plan })) as usize
        ))
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
            return Err(err(Kind::InvalidArgument, "bytes is null"));
        }
        let v = env.convert_byte_array(&bytes)?;
        let plan = Plan::from_bytes(&v)?;
        Ok(register(
            Box::into_raw(Box::new(ModelHandle { plan })) as usize
        ))
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
        if unregister(h) {
            // SAFETY: was live (from Box::into_raw) and is now unregistered.
            drop(unsafe { Box::from_raw(h as *mut ModelHandle) });
        }
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
        Ok(register(Box::into_raw(Box::new(SessionHandle {
            session: Session::new(m.plan.clone()),
        })) as usize))
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
        if unregister(h) {
            // SAFETY: was live (from Box::into_raw) and is now unregistered.
            drop(unsafe { Box::from_raw(h as *mut SessionHandle) });
        }
        Ok(())
    })
}

fn shapes_of(env: &mut JNIEnv<'_>, shapes: &JObjectArray<'_>) -> Result<Vec<Vec<usize>>, Error> {
    let n = env.get_array_length(shapes)?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let a: JLongArray<'_> = env.get_object_array_element(shapes, i)?.into();
        if a.is_null() {
            return Err(err(Kind::InvalidArgument, format!("shape {i} is null")));
        }
        let len = env.get_array_length(&a)?;
        let mut v = vec![0i64; len as usize];
        env.get_long_array_region(&a, 0, &mut v)?;
        if v.iter().any(|&d| d < 0) {
            return Err(err(
                Kind::InvalidArgument,
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
                Kind::InvalidArgument,
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
                        Kind::InvalidArgument,
                        format!("input {i}: unknown dtype code {code}"),
                    )
                })?;
            let b: JByteBuffer<'_> = env.get_object_array_element(&buffers, i as i32)?.into();
            if b.is_null() {
                return Err(err(
                    Kind::InvalidArgument,
                    format!("input {i}: buffer is null"),
                ));
            }
            let ptr = env.get_direct_buffer_address(&b).map_err(|_| {
                err(
                    Kind::InvalidArgument,
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
                Kind::InvalidArgument,
                format!("{threads} threads: expected 1..=256"),
            )
        })?;
        session(h)?.session.set_threads(n)?;
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
