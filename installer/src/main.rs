//! `installer`: see docs/installer.md. All logic lives in the library.
fn main() {
    std::process::exit(installer::cli::main());
}
