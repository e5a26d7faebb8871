//! ipcbench's command line; the work, parsing included, lives in the library.

fn main() -> std::process::ExitCode {
    ipcbench::main_with(&[])
}
