"""SMART Backend Services: a ``client_credentials`` grant with a signed JWT assertion (PyJWT), as httpx auth.

The token endpoint comes from ``[base]/.well-known/smart-configuration``. Each token is asked for
with a fresh assertion (``iss`` = ``sub`` = the client id, ``aud`` = the token URL, ``exp`` 5 minutes
ahead, a unique ``jti``, the key's ``kid``), signed ES384 (an EC P-384 key) or RS384 (an RSA key).
The token is renewed before it expires and on a 401. Neither the key, the assertion nor the token is
ever printed or written: errors name the setting to check instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from drg_etl.core.errors import UsageError
from drg_etl.pull.http import RETRYABLE_STATUS, CredentialRefused, PullError, Retryable

CLIENT_ID = "DRG_ETL_FHIR_CLIENT_ID"
KEY_FILE = "DRG_ETL_FHIR_KEY_FILE"
KEY_ID = "DRG_ETL_FHIR_KEY_ID"
SCOPE = "DRG_ETL_FHIR_SCOPE"
DEFAULT_SCOPE = "system/*.rs"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds: SMART asks for at most five minutes
RENEW_BEFORE = 60  # seconds before a token's expiry it is renewed


@dataclass(frozen=True)
class BackendCredentials:
    """The registered client: its id, the private key that signs its assertions, the key's ``kid``, the scope."""

    client_id: str
    key: object = field(repr=False)
    key_id: str
    algorithm: str
    scope: str = DEFAULT_SCOPE

    def __repr__(self) -> str:
        return f"BackendCredentials(client_id={self.client_id!r}, key_id={self.key_id!r}, alg={self.algorithm})"

    @classmethod
    def from_environment(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> BackendCredentials:
        """Read the client from the environment; a missing or unusable setting is named (exit 2)."""
        env = os.environ if environ is None else environ
        missing = [name for name in (CLIENT_ID, KEY_FILE, KEY_ID) if not env.get(name)]
        if missing:
            raise UsageError(f"set {', '.join(missing)}: the FHIR pull signs in as a registered backend client "
                             "(pull.md, Configuration and secrets)")
        return cls.from_key_file(env[CLIENT_ID], Path(env[KEY_FILE]), env[KEY_ID],
                                 env.get(SCOPE) or DEFAULT_SCOPE)

    @classmethod
    def from_key_file(cls, client_id: str, path: Path, key_id: str, scope: str = DEFAULT_SCOPE) -> BackendCredentials:
        """Load a PEM private key: EC P-384 signs ES384, RSA signs RS384; anything else is refused by name."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{KEY_FILE}: the key file {path} cannot be read ({exc.strerror})") from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{KEY_FILE}: {path} is not an unencrypted PEM private key") from exc
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
            algorithm = "ES384"
        elif isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
            algorithm = "RS384"
        else:
            raise UsageError(f"{KEY_FILE}: {path} must hold an EC P-384 key (ES384) or an RSA key of at least "
                             "2048 bits (RS384)")
        return cls(client_id, key, key_id, algorithm, scope)

    def assertion(self, token_url: str, now: float | None = None) -> str:
        """A fresh signed client assertion for one token request."""
        issued = int(now if now is not None else time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "iat": issued,
                  "exp": issued + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": self.key_id, "typ": "JWT"})


def token_endpoint(client: httpx.Client, base_url: str) -> str:
    """The token endpoint the server's ``.well-known/smart-configuration`` names."""
    url = base_url.rstrip("/") + "/.well-known/smart-configuration"
    try:
        response = client.get(url, headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise PullError(f"{url}: the FHIR server cannot be reached ({type(exc).__name__}); check --url") from exc
    if response.status_code != 200:
        raise PullError(f"{url}: HTTP {response.status_code}; the server publishes no SMART configuration "
                        "(check --url: the FHIR base, e.g. https://ehr.example/fhir)")
    try:
        endpoint = response.json()["token_endpoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PullError(f"{url}: the SMART configuration names no token_endpoint") from exc
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise PullError(f"{url}: the token_endpoint is not an absolute URL")
    return endpoint


class BackendAuth(httpx.Auth):
    """httpx auth: a bearer token from the token endpoint, renewed before expiry and once on a 401."""

    def __init__(self, credentials: BackendCredentials, token_url: str, clock=time.time) -> None:
        self.credentials = credentials
        self.token_url = token_url
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self.tokens_issued = 0

    def __repr__(self) -> str:
        return f"BackendAuth(client_id={self.credentials.client_id!r}, token_url={self.token_url!r})"

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", "scope": self.credentials.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.credentials.assertion(self.token_url, self.clock())}
        return httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})

    def _take(self, response: httpx.Response) -> None:
        response.read()
        if response.status_code != 200:
            error = _oauth_error(response)
            if response.status_code in (400, 401, 403):
                raise CredentialRefused(
                    f"the token endpoint refused the client ({error}): check {CLIENT_ID}, {KEY_ID} and {KEY_FILE}, "
                    f"and that the server holds the client's public key (JWKS) and allows scope "
                    f"{self.credentials.scope!r} ({SCOPE})")
            if response.status_code in RETRYABLE_STATUS:  # the whole request is asked again, a new assertion too
                raise Retryable(response, f"HTTP {response.status_code} from the token endpoint")
            raise PullError(f"the token endpoint answered HTTP {response.status_code} ({error})")
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise PullError("the token endpoint's answer holds no access_token") from exc
        self._token = token
        self._expires = self.clock() + lifetime
        self.tokens_issued += 1

    def _stale(self) -> bool:
        return self._token is None or self.clock() >= self._expires - RENEW_BEFORE

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request with a current token; on a 401, renew the token once and send it again."""
        if self._stale():
            self._take((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # httpx reads and closes the refused answer itself
            self._take((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _oauth_error(response: httpx.Response) -> str:
    """``error: description`` of an OAuth error answer, or its status (never the request)."""
    try:
        body = response.json()
        text = str(body.get("error", "")) + (f": {body['error_description']}" if body.get("error_description") else "")
        return text[:300] or f"HTTP {response.status_code}"
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
