//! Finishing touches on the generated OpenAPI document, applied once in one place so every
//! route gets them: the bearer-token security scheme, a declared parameter for every `{name}`
//! in a path, and operation ids that are unique across the whole API.

use std::collections::HashSet;

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Required, SecurityRequirement};

/// Paths that take no bearer token: health checks and the vendor-authenticated receivers.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json"
    ) || path.starts_with("/api/v1/webhooks/")
}

pub fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "an API token (`pmapd token create`) or PMAP_ADMIN_TOKEN",
                ))
                .build(),
        ),
    );

    let mut seen = HashSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            declare_path_parameters(path, operation);
            if !is_public(path) && operation.security.is_none() {
                operation.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
            let id = unique_operation_id(method, path);
            if !seen.insert(id.clone()) {
                tracing::warn!(operation = %id, "two operations share an id");
            }
            operation.operation_id = Some(id);
        }
    }
    doc
}

/// `post /api/v1/integrations/{id}/ci/pr-status` → `post_integrations_id_ci_pr_status`.
fn unique_operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_matches(|c| c == '{' || c == '}')
                .replace(['-', '.'], "_")
        })
        .collect();
    format!("{method}_{}", words.join("_"))
}

fn declare_path_parameters(path: &str, operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for name in path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    {
        let declared = parameters
            .iter()
            .any(|p: &Parameter| p.name == name && p.parameter_in == ParameterIn::Path);
        if !declared {
            parameters.push(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_method_and_path() {
        assert_eq!(
            unique_operation_id("post", "/api/v1/integrations/{id}/ci/pr-status"),
            "post_integrations_id_ci_pr_status"
        );
        assert_eq!(unique_operation_id("get", "/healthz"), "get_healthz");
    }
}
