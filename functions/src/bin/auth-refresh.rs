//! Lambda function for `POST /auth/refresh`.

use kv_shared::routes::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kv_shared::lambda::run(Endpoint::Refresh).await
}
