//! Bearer tokens: HS256 JWTs carrying the user id and role. The actor of every event comes
//! from here.

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use leadflow_domain::{Actor, Role, UserId};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    sub: String,
    role: Role,
    iat: i64,
    exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the authorization header is not 'Bearer <token>'")]
    Malformed,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A valid token of a user the catalog refuses (dismissed, or unknown to it).
    #[error("token refused: {0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Auth {
    /// Keys from a shared secret (at least 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A token for `user` acting as `role`, valid for `ttl`.
    pub fn issue(&self, user: UserId, role: Role, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            role,
            iat: now,
            exp: now + ttl.as_secs() as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        let data = decode::<Claims>(token, &self.decoding, &Validation::new(Algorithm::HS256))
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let user =
            UserId::parse(&data.claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(Actor {
            user,
            role: data.claims.role,
        })
    }

    /// The actor of an `Authorization` header value.
    pub fn from_header(&self, value: &str) -> Result<Actor, AuthError> {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Malformed)?;
        self.verify(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let auth = Auth::from_secret(b"0123456789abcdef0123456789abcdef");
        let user = UserId::named("ivan.manager");
        let token = auth.issue(user, Role::Manager, Duration::from_secs(60));
        assert_eq!(
            auth.from_header(&format!("Bearer {token}")).unwrap(),
            Actor {
                user,
                role: Role::Manager
            }
        );
        let other = Auth::from_secret(b"another secret another secret 32");
        assert!(other.verify(&token).is_err());
        assert!(matches!(
            auth.from_header(&token),
            Err(AuthError::Malformed)
        ));
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(auth.verify(&tampered).is_err());
    }
}
