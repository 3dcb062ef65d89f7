//! The CloudFormation custom-resource protocol, in the request and response types of
//! `aws_lambda_events`: whatever the resource's handler did, a response goes to the request's
//! pre-signed `ResponseURL` (a PUT with an empty `Content-Type`, as the URL is signed for)
//! before the function's deadline, so that a failure rolls the stack back at once instead of
//! leaving it waiting an hour for an answer.

use std::time::{Duration, SystemTime};

pub use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use tokio::time::Instant;

/// Longest `Reason` sent back: a whole response must stay under CloudFormation's 4,096 bytes.
pub const MAX_REASON_BYTES: usize = 1000;

/// Time kept back from the Lambda deadline to report before the function is killed: room for
/// every attempt of [`send`].
const RESPONSE_MARGIN: Duration = Duration::from_secs(40);

/// How long one attempt to PUT the response may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The response could not be delivered to CloudFormation.
#[derive(Debug, thiserror::Error)]
#[error("could not send the response to CloudFormation: {0}")]
pub struct SendError(String);

/// The HTTP client that sends responses: each attempt bounded by a timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .expect("a TLS backend is compiled in")
}

/// The instant to have answered by: the invocation's `deadline` less a margin to report in.
pub fn answer_by(deadline: SystemTime) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(RESPONSE_MARGIN);
    Instant::now() + left.max(Duration::from_secs(1))
}

/// The response to `request`, given the handler's `outcome` (`Ok` and `Err` both carry the
/// reason to report). A new resource gets `physical_resource_id`; an existing one keeps the
/// id CloudFormation knows it by, so an update never turns into a replacement.
pub fn response(
    request: &Request,
    physical_resource_id: &str,
    outcome: Result<String, String>,
) -> Response {
    let (status, reason) = match outcome {
        Ok(reason) => (Status::Success, reason),
        Err(reason) => (Status::Failed, reason),
    };
    let mut response = Response::default();
    response.status = status;
    response.reason = Some(truncate(&reason, MAX_REASON_BYTES));
    response.physical_resource_id = existing_physical_id(request)
        .filter(|id| !id.is_empty())
        .unwrap_or(physical_resource_id)
        .to_owned();
    let (stack_id, request_id, logical_resource_id) = match request {
        Request::Create(create) => (
            &create.stack_id,
            &create.request_id,
            &create.logical_resource_id,
        ),
        Request::Update(update) => (
            &update.stack_id,
            &update.request_id,
            &update.logical_resource_id,
        ),
        Request::Delete(delete) => (
            &delete.stack_id,
            &delete.request_id,
            &delete.logical_resource_id,
        ),
        _ => unreachable!("CloudFormation sends Create, Update and Delete only"),
    };
    response.stack_id = stack_id.clone();
    response.request_id = request_id.clone();
    response.logical_resource_id = logical_resource_id.clone();
    response
}

/// The pre-signed URL the response of `request` goes to.
pub fn response_url(request: &Request) -> &str {
    match request {
        Request::Create(create) => &create.response_url,
        Request::Update(update) => &update.response_url,
        Request::Delete(delete) => &delete.response_url,
        _ => unreachable!("CloudFormation sends Create, Update and Delete only"),
    }
}

fn existing_physical_id(request: &Request) -> Option<&str> {
    match request {
        Request::Update(update) => Some(&update.physical_resource_id),
        Request::Delete(delete) => Some(&delete.physical_resource_id),
        _ => None,
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// PUTs `response` to CloudFormation's pre-signed `url`, trying three times.
pub async fn send(http: &reqwest::Client, url: &str, response: &Response) -> Result<(), SendError> {
    let body = serde_json::to_vec(response).map_err(|error| SendError(error.to_string()))?;
    let mut attempt = 1;
    loop {
        let sent = http
            .put(url)
            // The URL is signed for an empty content type: any other value is refused.
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 3 => {
                tracing::warn!(error = %error.without_url(), attempt, "could not send the response; retrying");
                tokio::time::sleep(Duration::from_secs(attempt)).await;
                attempt += 1;
            }
            // The URL is a bearer credential for the response: keep it out of the logs.
            Err(error) => return Err(SendError(error.without_url().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(request_type: &str) -> Request {
        serde_json::from_value(json!({
            "RequestType": request_type,
            "ResponseURL": "https://example.com/response",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv/1f2e3d4c",
            "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
            "LogicalResourceId": "DatabaseSchema",
            "PhysicalResourceId": "kv-schema-of-an-older-version",
            "ResourceType": "Custom::DatabaseSchema",
            "ResourceProperties": {},
            "OldResourceProperties": {}
        }))
        .unwrap()
    }

    #[test]
    fn the_response_has_cloudformation_field_names_and_a_bounded_reason() {
        let request = request("Create");
        let json =
            serde_json::to_value(response(&request, "kv-schema", Err("é".repeat(2000)))).unwrap();
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["PhysicalResourceId"], "kv-schema");
        assert_eq!(
            json["StackId"],
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv/1f2e3d4c"
        );
        assert_eq!(json["RequestId"], "5d478078-13e9-baf0-464a-7ef285ecc786");
        assert_eq!(json["LogicalResourceId"], "DatabaseSchema");
        let reason = json["Reason"].as_str().unwrap();
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.ends_with("..."),
            "{reason}"
        );
    }

    #[test]
    fn updates_and_deletes_keep_the_physical_id_cloudformation_knows() {
        for request_type in ["Update", "Delete"] {
            let answer = response(&request(request_type), "kv-schema", Ok("done".into()));
            assert_eq!(answer.status, Status::Success);
            assert_eq!(answer.physical_resource_id, "kv-schema-of-an-older-version");
            assert_eq!(answer.reason.as_deref(), Some("done"));
        }
    }
}
