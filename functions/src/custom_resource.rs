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
    crate::stop_before(deadline, RESPONSE_MARGIN)
}

/// What every request type carries, read by one match: the pre-signed URL to answer at, the
/// ids to echo, and the physical id CloudFormation already knows the resource by (none on
/// `Create`). `None` for a request type this crate's version does not know.
struct Ids<'a> {
    response_url: &'a str,
    stack_id: &'a str,
    request_id: &'a str,
    logical_resource_id: &'a str,
    physical_resource_id: Option<&'a str>,
}

fn ids(request: &Request) -> Option<Ids<'_>> {
    Some(match request {
        Request::Create(create) => Ids {
            response_url: &create.response_url,
            stack_id: &create.stack_id,
            request_id: &create.request_id,
            logical_resource_id: &create.logical_resource_id,
            physical_resource_id: None,
        },
        Request::Update(update) => Ids {
            response_url: &update.response_url,
            stack_id: &update.stack_id,
            request_id: &update.request_id,
            logical_resource_id: &update.logical_resource_id,
            physical_resource_id: Some(&update.physical_resource_id),
        },
        Request::Delete(delete) => Ids {
            response_url: &delete.response_url,
            stack_id: &delete.stack_id,
            request_id: &delete.request_id,
            logical_resource_id: &delete.logical_resource_id,
            physical_resource_id: Some(&delete.physical_resource_id),
        },
        _ => return None,
    })
}

/// Sends CloudFormation the response to `request`, given the handler's `outcome` (`Ok` and
/// `Err` both carry the reason to report), and returns it. A new resource gets
/// `physical_resource_id`; an existing one keeps the id CloudFormation knows it by, so an
/// update never turns into a replacement.
pub async fn respond(
    http: &reqwest::Client,
    request: &Request,
    physical_resource_id: &str,
    outcome: Result<String, String>,
) -> Result<Response, SendError> {
    let ids = ids(request).ok_or_else(|| SendError("an unknown request type".to_owned()))?;
    let response = response(&ids, physical_resource_id, outcome);
    send(http, ids.response_url, &response).await?;
    Ok(response)
}

fn response(
    ids: &Ids<'_>,
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
    response.physical_resource_id = ids
        .physical_resource_id
        .filter(|id| !id.is_empty())
        .unwrap_or(physical_resource_id)
        .to_owned();
    response.stack_id = ids.stack_id.to_owned();
    response.request_id = ids.request_id.to_owned();
    response.logical_resource_id = ids.logical_resource_id.to_owned();
    response
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
async fn send(http: &reqwest::Client, url: &str, response: &Response) -> Result<(), SendError> {
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
        let json = serde_json::to_value(response(
            &ids(&request).unwrap(),
            "kv-schema",
            Err("é".repeat(2000)),
        ))
        .unwrap();
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
            let request = request(request_type);
            let answer = response(&ids(&request).unwrap(), "kv-schema", Ok("done".into()));
            assert_eq!(answer.status, Status::Success);
            assert_eq!(answer.physical_resource_id, "kv-schema-of-an-older-version");
            assert_eq!(answer.reason.as_deref(), Some("done"));
        }
    }
}
