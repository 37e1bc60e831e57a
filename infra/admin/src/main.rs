//! `omnichat-admin`: see the library, or `omnichat-admin --help`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    omnichat_admin::main(std::env::args_os()).await
}
