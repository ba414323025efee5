//! `include/mote.h` is what cbindgen makes of `src/lib.rs` today: regenerated in memory and
//! compared. `MOTE_BLESS_HEADER=1` rewrites the file instead.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cannot read engine/capi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen cannot generate the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = crate_dir.join("include/mote.h");
    if std::env::var_os("MOTE_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("cannot write include/mote.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != fresh {
        panic!(
            "{} is out of date with src/lib.rs; regenerate it with\n  MOTE_BLESS_HEADER=1 cargo test -p mote-capi --test header",
            path.display()
        );
    }
}
