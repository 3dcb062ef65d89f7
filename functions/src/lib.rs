//! What the Lambda functions share beyond `kv_shared`: the CloudFormation custom-resource
//! protocol that `db-migrate` answers. The API functions are each a few lines of `src/bin`.

pub mod custom_resource;
