//! AWS SDK configuration shared by the SQS source and the KMS key loader.

/// AWS configuration for an optional endpoint override (LocalStack) and region. With an endpoint
/// and no credentials configured, static test credentials are used: LocalStack accepts any, and
/// developers shouldn't have to configure fake ones.
pub async fn config(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        if region.is_none() && std::env::var_os("AWS_REGION").is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
        let has_env_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if !has_env_credentials {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "login-etl-localstack",
            ));
        }
    }
    loader.load().await
}
