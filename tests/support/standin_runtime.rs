//! Stand-in container runtime (test support only). See docs/testing.md.
fn main() {
    eprintln!("standin-runtime: not implemented yet");
    std::process::exit(255);
}
