//! The cluster behind the service: building the kube client from the config, the health probe's
//! state, API discovery (kinds, plurals, short names) and API errors as texts a person can act on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};

use crate::error::K8sError;
use crate::{K8s, K8sConfig};

/// What the last health check found.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterState {
    pub(crate) version: Option<String>,
    pub(crate) error: Option<String>,
}

pub(crate) async fn build_client(cfg: &K8sConfig) -> Result<Client, K8sError> {
    let mut config = if let Some(url) = cfg.api_server.as_deref().filter(|u| !u.is_empty()) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| K8sError::Config(format!("k8s.api_server `{url}` is not a URL: {e}")))?;
        let mut c = Config::new(uri);
        if let Some(t) = &cfg.token_file {
            let raw = std::fs::read_to_string(t).map_err(|e| {
                K8sError::Config(format!("cannot read k8s.token_file {}: {e}", t.display()))
            })?;
            let token = raw.trim();
            if token.is_empty() {
                return Err(K8sError::Config(format!(
                    "k8s.token_file {} is empty",
                    t.display()
                )));
            }
            if token.len() == raw.len() {
                // Re-read by the client, so a rotated (projected) token is picked up.
                c.auth_info.token_file = Some(t.display().to_string());
            } else {
                // A file written with a trailing newline (echo > file) cannot go into a header as is.
                c.auth_info.token = Some(secrecy::SecretString::from(token.to_owned()));
            }
        }
        c.root_cert_file = cfg.ca_file.clone();
        c.accept_invalid_certs = cfg.insecure_skip_tls_verify;
        c
    } else {
        let path = cfg
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".kube/config"))
                    .filter(|p| p.exists())
            });
        match path {
            Some(p) => {
                let kc = Kubeconfig::read_from(&p).map_err(|e| {
                    K8sError::Config(format!("cannot read kubeconfig {}: {e}", p.display()))
                })?;
                let opts = KubeConfigOptions {
                    context: cfg.context.clone(),
                    ..KubeConfigOptions::default()
                };
                Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| K8sError::Config(format!("kubeconfig {}: {e}", p.display())))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Config::incluster()
                .map_err(|e| K8sError::Config(format!("in-cluster configuration: {e}")))?,
            None => {
                return Err(K8sError::Config("no cluster configured: set k8s.kubeconfig (or KUBECONFIG), k8s.api_server + k8s.token_file, or run in a pod".to_owned()));
            }
        }
    };
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(config)
        .map_err(|e| K8sError::Config(format!("cannot build the Kubernetes client: {e}")))
}

/// A Kubernetes API error as a text a person can act on.
pub(crate) fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => {
                    "the API server rejected the credentials: check the token or kubeconfig user"
                }
                403 => {
                    "RBAC forbids this for the service's account: grant the verb on the resource or use another namespace"
                }
                404 => "no such resource",
                409 => {
                    "conflict: another field manager owns these fields (apply with force=true to take them over) or the object changed meanwhile"
                }
                422 => "the object is invalid",
                429 => "the API server is throttling requests; retry later",
                500..=599 => "the API server failed; retry later or check its logs",
                _ => "",
            };
            format!(
                "Kubernetes API {} {}: {}{}{}",
                s.code,
                s.reason,
                s.message,
                if hint.is_empty() { "" } else { " — " },
                hint
            )
        }
        other => format!("Kubernetes API request failed: {other}"),
    }
}

impl K8s {
    pub(crate) fn client(&self) -> Result<&Client, K8sError> {
        self.client
            .as_ref()
            .map_err(|e| K8sError::NoCluster(e.to_string()))
    }

    pub(crate) async fn discovery(&self) -> Result<Arc<Discovery>, K8sError> {
        let mut cache = self.discovery.lock().await;
        if let Some((at, d)) = cache.as_ref()
            && at.elapsed() < Duration::from_secs(300)
        {
            return Ok(d.clone());
        }
        let d = Arc::new(Discovery::new(self.client()?.clone()).run().await?);
        *cache = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// Finds a resource type by kind, plural or short name (`Deployment`, `deployments`, `deploy`).
    pub(crate) async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<(ApiResource, ApiCapabilities), K8sError> {
        let wanted = short_name(&kind.to_ascii_lowercase()).to_owned();
        let d = self.discovery().await?;
        let mut found = Vec::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                let hit = ar.kind.eq_ignore_ascii_case(&wanted) || ar.plural == wanted;
                if hit && api_version.is_none_or(|v| v == ar.api_version) {
                    found.push((ar, caps));
                }
            }
        }
        // The core and built-in groups win over same-named custom resources.
        found.sort_by_key(|(ar, _)| (!ar.group.is_empty(), ar.group.contains('.')));
        found
            .into_iter()
            .next()
            .ok_or_else(|| K8sError::UnknownKind {
                kind: kind.to_owned(),
                api_version: api_version.map(str::to_owned),
            })
    }

    pub(crate) fn dynamic_api(
        &self,
        ar: &ApiResource,
        caps: &ApiCapabilities,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, K8sError> {
        let client = self.client()?.clone();
        Ok(match (&caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, ar),
            _ => Api::all_with(client, ar),
        })
    }
}

pub(crate) fn short_name(k: &str) -> &str {
    match k {
        "po" | "pod" => "pods",
        "deploy" | "deployment" => "deployments",
        "svc" | "service" => "services",
        "ns" | "namespace" => "namespaces",
        "cm" | "configmap" => "configmaps",
        "sts" | "statefulset" => "statefulsets",
        "ds" | "daemonset" => "daemonsets",
        "rs" | "replicaset" => "replicasets",
        "ev" | "event" => "events",
        "no" | "node" => "nodes",
        "sa" | "serviceaccount" => "serviceaccounts",
        "ing" | "ingress" => "ingresses",
        "pvc" => "persistentvolumeclaims",
        "pv" => "persistentvolumes",
        "cj" => "cronjobs",
        other => other,
    }
}
