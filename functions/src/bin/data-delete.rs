//! Lambda function for `DELETE /data/delete/{key}`.

use kv_shared::routes::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kv_shared::lambda::run(Endpoint::Delete).await
}
