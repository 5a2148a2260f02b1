//! The uniffi bindings generator, built from this crate (`--features cli`).
fn main() {
    uniffi::uniffi_bindgen_main()
}
