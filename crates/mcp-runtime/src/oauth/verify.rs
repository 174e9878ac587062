//! Checking one token: a JWT against the issuer's keys (algorithm, key, signature, `iss`, `aud`,
//! `exp`, `nbf`), or an opaque token by RFC 7662 introspection; each failure becomes a `Refusal`
//! with its metric reason and a sentence that never echoes the token.

use std::collections::HashSet;

use jsonwebtoken::Validation;

use super::config::parse_algorithm;
use super::keys::http_failure;
use super::{AS_TIMEOUT, Claims, OAuth, Refusal};

impl OAuth {
    pub(super) async fn verify_jwt(
        &self,
        token: &str,
        alg: &str,
        kid: Option<&str>,
        audiences: &[String],
    ) -> Result<Claims, Refusal> {
        let allowed = || self.cfg.algorithms.join(", ");
        let Some(algorithm) = parse_algorithm(alg).filter(|a| self.algorithms.contains(a)) else {
            return Err(Refusal::unauthorized(
                "algorithm",
                format!(
                    "token algorithm `{alg}` is not accepted (accepted: {})",
                    allowed()
                ),
            ));
        };
        let keys = self.keys_for(kid, algorithm).await?;
        if keys.is_empty() {
            return Err(Refusal::unauthorized(
                "unknown_key",
                match kid {
                    Some(kid) => {
                        format!("token signed by key `{kid}`, which is not in the issuer's JWKS")
                    }
                    None => "token has no `kid` and no key of the issuer's JWKS fits it".to_owned(),
                },
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.cfg.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.cfg.issuer.as_str()]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = None;
        for key in keys {
            if key.alg.is_some_and(|a| a != algorithm) {
                last = Some(Refusal::unauthorized(
                    "algorithm",
                    format!("token algorithm `{alg}` does not match its key's"),
                ));
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let refusal = self.refusal_of(e.kind(), audiences);
                    let bad_signature = refusal.reason == "signature";
                    last = Some(refusal);
                    if !bad_signature {
                        break;
                    }
                }
            }
        }
        Err(last
            .unwrap_or_else(|| Refusal::unauthorized("signature", "token signature is invalid")))
    }

    fn refusal_of(&self, kind: &jsonwebtoken::errors::ErrorKind, audiences: &[String]) -> Refusal {
        use jsonwebtoken::errors::ErrorKind as K;
        match kind {
            K::ExpiredSignature => Refusal::unauthorized("expired", "token expired"),
            K::ImmatureSignature => {
                Refusal::unauthorized("not_yet_valid", "token is not valid yet (nbf)")
            }
            K::InvalidIssuer => Refusal::unauthorized(
                "issuer",
                format!("token was not issued by {}", self.cfg.issuer),
            ),
            K::InvalidAudience => Refusal::unauthorized(
                "audience",
                format!(
                    "token is meant for another resource (its aud must name {})",
                    audiences
                        .last()
                        .map(String::as_str)
                        .unwrap_or("this server")
                ),
            ),
            K::MissingRequiredClaim(c) => {
                Refusal::unauthorized("claims", format!("token has no `{c}` claim"))
            }
            K::InvalidSignature => Refusal::unauthorized("signature", "token signature is invalid"),
            K::InvalidAlgorithm => {
                Refusal::unauthorized("algorithm", "token algorithm does not match its key")
            }
            K::InvalidClaimFormat(c) => {
                Refusal::unauthorized("claims", format!("token claim `{c}` has the wrong type"))
            }
            _ => Refusal::unauthorized("malformed", "token is not a well-formed JWT"),
        }
    }

    /// RFC 7662: asks the authorization server about an opaque token.
    pub(super) async fn introspect(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Claims, Refusal> {
        let endpoints = self.endpoints().await?;
        let (Some(url), Some(client_id), Some(secret)) = (
            endpoints.introspection.as_deref(),
            self.cfg.client_id.as_deref(),
            self.client_secret.as_deref(),
        ) else {
            return Err(Refusal::unauthorized(
                "malformed",
                "token is not a JWT (opaque tokens need server.oauth.client_id for introspection)",
            ));
        };
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let r = self
            .http
            .post(url)
            .basic_auth(client_id, Some(secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .timeout(AS_TIMEOUT)
            .send()
            .await
            .map_err(|e| Refusal::unavailable(format!("introspection: {}", http_failure(&e))))?;
        if !r.status().is_success() {
            return Err(Refusal::unavailable(format!(
                "introspection answered HTTP {}",
                r.status().as_u16()
            )));
        }
        let claims: Claims = r
            .json()
            .await
            .map_err(|_| Refusal::unavailable("introspection answer is not a JSON object"))?;
        if claims.get("active").and_then(serde_json::Value::as_bool) != Some(true) {
            return Err(Refusal::unauthorized(
                "inactive",
                "token is not active (revoked, expired or unknown to the issuer)",
            ));
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(iss) = claims.get("iss").and_then(serde_json::Value::as_str)
            && iss.trim_end_matches('/') != self.cfg.issuer.trim_end_matches('/')
        {
            return Err(Refusal::unauthorized(
                "issuer",
                format!("token was not issued by {}", self.cfg.issuer),
            ));
        }
        let aud: HashSet<&str> = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => HashSet::from([s.as_str()]),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => HashSet::new(),
        };
        if !audiences.iter().any(|a| aud.contains(a.as_str())) {
            return Err(
                self.refusal_of(&jsonwebtoken::errors::ErrorKind::InvalidAudience, audiences)
            );
        }
        if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_u64)
            && nbf > now + self.cfg.leeway_secs
        {
            return Err(self.refusal_of(
                &jsonwebtoken::errors::ErrorKind::ImmatureSignature,
                audiences,
            ));
        }
        Ok(claims)
    }
}
