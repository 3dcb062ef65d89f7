//! Lambda function for `POST /auth/logout`.

use kv_shared::routes::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kv_shared::lambda::run(Endpoint::Logout).await
}
