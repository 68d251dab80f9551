"""AWS adapters: the KMS signer, key material from KMS and Secrets Manager.

The functions make three AWS calls (KMS ``Sign`` and ``GetPublicKey``, Secrets Manager
``GetSecretValue``). They are made by :class:`AwsJsonClient`: plain JSON 1.1 POSTs over the same
deadline-bounded transport as every other outbound call, signed by botocore's ``SigV4Auth``
(``import botocore.auth`` costs ~70 ms against ~150 ms for boto3 and a client, and the request
never outlives the invocation's budget). boto3 clients, with the same method names, stay the
interface for scripts and tests and work with every adapter here.

This is the only module that talks to AWS. Every AWS failure is translated here into
:class:`DependencyUnavailableError` (``raise ... from exc``), so handlers answer 503 and
authorizers never Allow: throttling as ``<service>_throttled``, outages and timeouts as
``<service>_unavailable``, a deployment fault (disabled or missing key, access denied) as
:class:`DependencyMisconfiguredError`.
"""

import base64
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .budget import Budget
from .cache import CachedValue
from .emf import EmfCounter
from .errors import (
    ConditionFailedError,
    ConfigurationError,
    DependencyMisconfiguredError,
    DependencyUnavailableError,
)
from .http import HttpClient, check_url
from .keys import (
    EcKey,
    PublicKey,
    RsaKey,
    VerificationKey,
    algorithm_for,
    public_jwk,
    thumbprint,
)
from .signing import LocalKeySigner, der_to_jose

KMS_ALGORITHMS = {"RS256": "RSASSA_PKCS1_V1_5_SHA_256", "ES256": "ECDSA_SHA_256"}
# The KMS key spec that signs each algorithm (as template.yaml creates the stack's key).
KMS_KEY_SPECS = {"RS256": "RSA_2048", "ES256": "ECC_NIST_P256"}

T = TypeVar("T")

TARGET_PREFIXES = {
    "kms": "TrentService",
    "secretsmanager": "secretsmanager",
    "dynamodb": "DynamoDB_20120810",
}
JSON_VERSIONS = {"dynamodb": "1.0"}  # the others speak JSON 1.1
# The service-specific endpoint variable as the AWS SDKs name it (from the service id, "Secrets
# Manager"), so the functions and boto3 scripts reach the same endpoint.
ENDPOINT_VARIABLES = {"kms": "KMS", "secretsmanager": "SECRETS_MANAGER", "dynamodb": "DYNAMODB"}
MAX_ATTEMPTS = 3
ATTEMPT_SECONDS = 2.0  # one attempt's cap (connect, send, answer), within the budget
MIN_ATTEMPT_SECONDS = 0.25  # an attempt is not started with less than this left
MAX_AWS_ANSWER_BYTES = 256 * 1024
THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
    }
)
TRANSIENT = frozenset(
    {
        "KMSInternalException",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalServerError",
        # A write to an item that an ongoing transaction holds (DynamoDB): retried.
        "TransactionConflictException",
    }
)
# A cancelled transaction's reasons (DynamoDB's CancellationReasons codes) that are worth another
# attempt; a condition failure is the caller's, any other reason a deployment fault.
TRANSIENT_CANCELLATIONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
        "InternalServerError",
    }
)


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client (scripts and tests) with short timeouts and bounded retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=3,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return boto3.client(service, config=config, endpoint_url=endpoint_url)


class FrozenCredentials(NamedTuple):
    """The three values ``SigV4Auth`` reads from its credentials (as botocore's own
    ``ReadOnlyCredentials``), without importing ``botocore.credentials`` (~7 ms of a cold start)
    and its provider chain: the functions take their credentials from the environment only."""

    access_key: str
    secret_key: str
    token: str | None


def error_class(
    service: str, code: str, status: int, document: Mapping[str, Any] | None = None
) -> DependencyUnavailableError:
    """What an AWS error code means for us: throttled, out, or misconfigured (or, for a
    conditional DynamoDB write or a transaction cancelled by a condition, a lost race its caller
    handles; ``document`` is the error's body, where a cancelled transaction's reasons are)."""
    if code == "ConditionalCheckFailedException":
        return ConditionFailedError(f"{service}_condition_failed", code)
    if code == "TransactionCanceledException":
        reasons = (document or {}).get("CancellationReasons")
        codes = [
            str(reason.get("Code") or "None") if isinstance(reason, dict) else ""
            for reason in (reasons if isinstance(reasons, list) else [])
        ]
        failed = tuple(i for i, reason in enumerate(codes) if reason == "ConditionalCheckFailed")
        if failed:
            return ConditionFailedError(f"{service}_condition_failed", code, failed)
        if any(reason in TRANSIENT_CANCELLATIONS for reason in codes):
            return DependencyUnavailableError(f"{service}_unavailable", ",".join(codes))
        return DependencyMisconfiguredError(f"{service}_misconfigured", ",".join(codes) or code)
    if code in THROTTLED:
        return DependencyUnavailableError(f"{service}_throttled", code)
    if code in TRANSIENT or status >= 500:
        return DependencyUnavailableError(f"{service}_unavailable", code or f"status {status}")
    return DependencyMisconfiguredError(f"{service}_misconfigured", code or f"status {status}")


class AwsJsonClient:
    """One AWS JSON 1.1 service (KMS, Secrets Manager) over the deadline-bounded transport.

    Credentials and region come from the environment as Lambda provides them (including the
    session token); the endpoint from ``AWS_ENDPOINT_URL`` when set (the local stack's moto
    server), fixed when the client is built. Each attempt is signed afresh and gets what is left
    of the budget (at most ``ATTEMPT_SECONDS``); throttling, 5xx and transport failures are
    retried with jittered backoff while the budget can cover another attempt.
    """

    def __init__(
        self,
        service: str,
        budget: Budget | None = None,
        environ: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.service = service
        self._env = env
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = (
            env.get(f"AWS_ENDPOINT_URL_{ENDPOINT_VARIABLES[service]}")
            or env.get("AWS_ENDPOINT_URL")
            or f"https://{service}.{self.region}.amazonaws.com"
        )
        self.endpoint = check_url(endpoint.rstrip("/") + "/", f"the {service} endpoint")
        self._budget = budget or Budget()
        self._http = http or HttpClient(self._budget, ATTEMPT_SECONDS, MAX_AWS_ANSWER_BYTES)
        # botocore's signer logs the canonical request (with the session token) and the
        # signature at DEBUG: never let a DEBUG log level put them in the function's log. Set
        # once here, not per request (setLevel clears every logger's level cache).
        logging.getLogger("botocore.auth").setLevel(logging.INFO)

    def _signed_headers(self, action: str, body: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        access_key = self._env.get("AWS_ACCESS_KEY_ID")
        secret_key = self._env.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise DependencyMisconfiguredError(f"{self.service}_misconfigured", "no credentials")
        credentials = FrozenCredentials(access_key, secret_key, self._env.get("AWS_SESSION_TOKEN"))
        request = AWSRequest(
            method="POST",
            url=self.endpoint,
            data=body,
            headers={
                "Content-Type": f"application/x-amz-json-{JSON_VERSIONS.get(self.service, '1.1')}",
                "X-Amz-Target": f"{TARGET_PREFIXES[self.service]}.{action}",
            },
        )
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return dict(request.headers.items())

    def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        unavailable = f"{self.service}_unavailable"
        failure: DependencyUnavailableError | None = None
        for attempt in range(MAX_ATTEMPTS):
            deadline = self._budget.deadline()
            if attempt and failure is not None:
                pause = random.uniform(0, 0.05 * 2**attempt)  # noqa: S311 - jitter, not secrets
                if deadline.remaining() < pause + MIN_ATTEMPT_SECONDS:
                    break  # the budget cannot cover another attempt
                time.sleep(pause)
            elif deadline.remaining() < MIN_ATTEMPT_SECONDS:
                raise DependencyUnavailableError(unavailable, "time budget spent")
            try:
                answer = self._http.request(
                    "POST",
                    self.endpoint,
                    self._signed_headers(action, body),
                    body,
                    unavailable,
                    deadline,
                )
            except DependencyMisconfiguredError:
                raise
            except DependencyUnavailableError as exc:
                failure = exc
                continue
            document = _json(answer.body)
            if answer.status == 200:
                if document is not None:
                    return document
                failure = DependencyUnavailableError(unavailable, "malformed answer")
                continue
            failure = error_class(
                self.service, _error_code(document, answer.headers), answer.status, document
            )
            if isinstance(failure, (DependencyMisconfiguredError, ConditionFailedError)):
                raise failure
        assert failure is not None
        raise failure


def _error_code(document: dict[str, Any] | None, headers: Mapping[str, str]) -> str:
    """``com.amazonaws.kms#ThrottlingException`` (or the header form) -> ``ThrottlingException``."""
    code = str((document or {}).get("__type") or headers.get("x-amzn-errortype", ""))
    return code.rpartition("#")[2].split(":")[0]


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


class KmsApi(AwsJsonClient):
    """The two KMS operations the functions make, answered like boto3's ``kms`` client."""

    def __init__(self, budget: Budget | None = None, **kwargs: Any) -> None:
        super().__init__("kms", budget, **kwargs)

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:  # boto3's parameter names
        answer = self.call("GetPublicKey", {"KeyId": KeyId})
        return {**answer, "PublicKey": base64.b64decode(answer["PublicKey"])}

    def sign(self, **params: Any) -> dict[str, Any]:
        payload = {**params, "Message": base64.b64encode(params["Message"]).decode()}
        answer = self.call("Sign", payload)
        return {**answer, "Signature": base64.b64decode(answer["Signature"])}


class SecretsApi(AwsJsonClient):
    """``GetSecretValue``, answered like boto3's ``secretsmanager`` client."""

    def __init__(self, budget: Budget | None = None, **kwargs: Any) -> None:
        super().__init__("secretsmanager", budget, **kwargs)

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:  # boto3's parameter names
        answer = self.call("GetSecretValue", {"SecretId": SecretId})
        if "SecretBinary" in answer:
            answer["SecretBinary"] = base64.b64decode(answer["SecretBinary"])
        return answer


def _translated(what: str, call: Callable[[], Any], read: Callable[[Any], T] | None = None) -> T:
    """Run an AWS call made by either client and ``read`` what it answered; botocore's errors
    (boto3 clients) translated as :class:`AwsJsonClient` translates its own, and an answer that
    is not what the operation answers (a member missing, of the wrong type, not decodable) as
    ``<what>_unavailable``."""
    try:
        answer = call()
        return read(answer) if read is not None else answer
    except DependencyUnavailableError:
        raise
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            raise error_class(what, str(error.get("Code", "")), status, exc.response) from exc
        if isinstance(exc, BotoCoreError):
            raise DependencyUnavailableError(f"{what}_unavailable", type(exc).__name__) from exc
        if isinstance(exc, (KeyError, TypeError, ValueError)):  # binascii.Error is a ValueError
            raise DependencyUnavailableError(f"{what}_unavailable", "malformed answer") from exc
        raise


# GetPublicKey answers a DER SubjectPublicKeyInfo. For the key specs an exchange signs with (an
# RSA key with e = 65537 of 2048, 3072 or 4096 bits; a P-256 key) that encoding is one constant
# head, the modulus or the curve point, and (RSA) one constant tail. Such an answer is read by
# comparing with the constants and handing the numbers to cryptography's own constructors, which
# check them; any other answer goes to cryptography's DER parser, whose serialization package
# (with its ssh module and ciphers) is ~8 ms of a first exchange to import. The constants are
# checked against that parser in tests/test_signers.py.
_SPKI_RSA_TAIL = bytes.fromhex("0203010001")  # INTEGER 65537
_SPKI_RSA_HEADS = {  # modulus bytes -> the head before it (its top bit set, so a 0x00 pad)
    256: bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100"),
    384: bytes.fromhex("308201a2300d06092a864886f70d01010105000382018f003082018a0282018100"),
    512: bytes.fromhex("30820222300d06092a864886f70d01010105000382020f003082020a0282020100"),
}
_SPKI_P256_HEAD = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def public_key_from_spki(der: bytes) -> object:
    """The public key in a DER SubjectPublicKeyInfo (ValueError if it is not one)."""
    if (
        len(der) == len(_SPKI_P256_HEAD) + 65
        and der.startswith(_SPKI_P256_HEAD)
        and der[len(_SPKI_P256_HEAD)] == 0x04  # an uncompressed point
    ):
        return ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), der[len(_SPKI_P256_HEAD) :]
        )
    tail = _SPKI_RSA_TAIL
    for size, head in _SPKI_RSA_HEADS.items():
        if (
            len(der) == len(head) + size + len(tail)
            and der.startswith(head)
            and der.endswith(tail)
            and der[len(head)] & 0x80
        ):
            modulus = int.from_bytes(der[len(head) : len(head) + size], "big")
            return rsa.RSAPublicNumbers(65537, modulus).public_key()
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return load_der_public_key(der)


def kms_public_key(kms: Any, key_id: str) -> tuple[str, PublicKey]:
    """(key ARN, public key) of a KMS signing key."""
    arn, public_key = _translated(
        "kms",
        lambda: kms.get_public_key(KeyId=key_id),
        lambda answer: (str(answer["KeyId"]), public_key_from_spki(bytes(answer["PublicKey"]))),
    )
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigurationError(f"KMS key {key_id} is not an RSA or EC key")
    return arn, public_key


def secret_bytes(secrets: Any, secret_id: str) -> bytes:
    def read(answer: Any) -> bytes:
        if "SecretString" in answer:
            return str(answer["SecretString"]).encode("utf-8")
        return bytes(answer["SecretBinary"])

    return _translated("secretsmanager", lambda: secrets.get_secret_value(SecretId=secret_id), read)


class KmsSigner:
    """Signs in KMS (``MessageType=RAW``); the private key never leaves KMS.

    The public key is read once, on first use (not at import, so a KMS outage during a cold start
    becomes a 503 instead of a failed init); after that, one ``Sign`` call per token.
    """

    def __init__(
        self, key_id: str, alg: str, kms: Any = None, budget: Budget | None = None
    ) -> None:
        if alg not in KMS_ALGORITHMS:
            raise ConfigurationError(f"KMS signing supports {sorted(KMS_ALGORITHMS)}")
        if not key_id:
            raise ConfigurationError("SIGNING_KEY_ID is required")
        self._kms = kms if kms is not None else KmsApi(budget)
        self._key_id = key_id
        self.alg = alg
        self._key = CachedValue(
            self._read_public_key, max_age=math.inf, budget=budget, reason="kms_unavailable"
        )

    def _read_public_key(self) -> tuple[str, str, dict[str, str], VerificationKey]:
        arn, public_key = kms_public_key(self._kms, self._key_id)
        if algorithm_for(public_key) != self.alg:
            raise ConfigurationError(f"KMS key {self._key_id} cannot sign {self.alg}")
        kid = thumbprint(public_key)
        verifier: VerificationKey = (
            RsaKey(public_key, kid)
            if isinstance(public_key, rsa.RSAPublicKey)
            else EcKey(public_key, kid)
        )
        return arn, kid, public_jwk(public_key, kid), verifier

    @property
    def kid(self) -> str:
        return self._key.get()[1]

    def public_jwk(self) -> dict[str, str]:
        return dict(self._key.get()[2])

    def sign(self, signing_input: bytes) -> bytes:
        arn, _, _, verifier = self._key.get()
        signature = _translated(
            "kms",
            lambda: self._kms.sign(
                KeyId=arn,
                Message=signing_input,
                MessageType="RAW",
                SigningAlgorithm=KMS_ALGORITHMS[self.alg],
            ),
            lambda answer: bytes(answer["Signature"]),
        )
        if self.alg != "RS256":
            try:
                signature = der_to_jose(signature)
            except ValueError as exc:
                raise DependencyUnavailableError("kms_unavailable", "malformed signature") from exc
        # A signature that the published key does not verify would be a token every verifier
        # refuses: checked here (well under a millisecond) instead of being issued.
        if not verifier.verify(signing_input, signature):
            raise DependencyUnavailableError("kms_unavailable", "signature does not verify")
        return signature


def local_signer_from_secret(secret_id: str, alg: str, secrets: Any = None) -> LocalKeySigner:
    """The Secrets Manager signing mode: a PEM private key read from a secret."""
    signer = LocalKeySigner.from_pem(secret_bytes(secrets or SecretsApi(), secret_id), own_key=True)
    if signer.alg != alg:
        raise ConfigurationError(f"the key in {secret_id} cannot sign {alg}")
    return signer


class SecretsManagerSigner:
    """A :class:`LocalKeySigner` whose PEM comes from Secrets Manager on first use (the opt-in
    Secrets Manager signing mode), re-read hourly.

    A re-read that finds an unusable key (not a PEM key, the wrong algorithm, a key whose
    signatures do not verify) keeps the last good key: an ERROR log line and one
    ``SigningKeyRejected`` count, and another read 10 s later. Only the first read's key, with
    no good key to fall back on, stops the function (a configuration error)."""

    def __init__(
        self,
        secret_id: str,
        alg: str,
        max_age: float = 3600.0,
        secrets: Any = None,
        budget: Budget | None = None,
        metrics: EmfCounter | None = None,
    ) -> None:
        self.alg = alg
        self._secret_id = secret_id
        self._secrets = secrets if secrets is not None else SecretsApi(budget)
        self._metrics = metrics
        self._last_good: LocalKeySigner | None = None
        self._signer = CachedValue(
            self._read, max_age=max_age, budget=budget, reason="secretsmanager_unavailable"
        )

    def _read(self) -> LocalKeySigner:
        try:
            signer = local_signer_from_secret(self._secret_id, self.alg, self._secrets)
        except ConfigurationError as exc:
            if self._last_good is None:
                raise
            logging.getLogger("tokengate.signing").error(
                "the signing key in Secrets Manager is unusable (%s): keeping the last good key",
                exc,
                extra={"secret": self._secret_id, "kid": self._last_good.kid},
            )
            metrics = self._metrics or EmfCounter.from_env(os.environ)
            metrics.count("SigningKeyRejected", reason="unusable_key")
            raise DependencyUnavailableError(
                "secretsmanager_unavailable", "the secret holds an unusable signing key"
            ) from exc
        self._last_good = signer
        return signer

    @property
    def kid(self) -> str:
        return self._signer.get().kid

    def sign(self, signing_input: bytes) -> bytes:
        return self._signer.get().sign(signing_input)

    def public_jwk(self) -> dict[str, str]:
        return self._signer.get().public_jwk()


class DynamoApi(AwsJsonClient):
    """The DynamoDB operations of the revocation store, answered like boto3's low-level
    ``dynamodb`` client (the wire format is that client's shapes)."""

    def __init__(self, budget: Budget | None = None, **kwargs: Any) -> None:
        super().__init__("dynamodb", budget, **kwargs)

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("GetItem", params)

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("BatchGetItem", params)

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self.call("PutItem", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self.call("UpdateItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self.call("TransactWriteItems", params)

    def scan(self, **params: Any) -> dict[str, Any]:
        return self.call("Scan", params)


class DynamoTable:
    """One DynamoDB table through either client (:class:`DynamoApi` in the functions, boto3 in
    scripts and tests), every failure translated: the store in :mod:`tokengate.revocation` sees
    only :class:`DependencyUnavailableError` and :class:`ConditionFailedError`."""

    def __init__(self, client: Any, name: str) -> None:
        if not name:
            raise ConfigurationError("REVOCATION_TABLE is required")
        self._client = client
        self.name = name

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, operation)
        answer: dict[str, Any] = _translated(
            "dynamodb", lambda: method(TableName=self.name, **params)
        )
        return answer

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._call("get_item", Key=key, ConsistentRead=True).get("Item")
        return item if isinstance(item, dict) else None

    def batch_get(self, keys: list[dict[str, Any]], **projection: Any) -> list[dict[str, Any]]:
        method = self._client.batch_get_item
        request = {self.name: {"Keys": keys, "ConsistentRead": True, **projection}}
        answer: dict[str, Any] = _translated("dynamodb", lambda: method(RequestItems=request))
        if answer.get("UnprocessedKeys"):
            raise DependencyUnavailableError("dynamodb_throttled", "unprocessed keys")
        return list((answer.get("Responses") or {}).get(self.name) or [])

    def put(self, item: dict[str, Any], **condition: Any) -> None:
        self._call("put_item", Item=item, **condition)

    def update(self, key: dict[str, Any], **params: Any) -> dict[str, Any]:
        attributes = self._call("update_item", Key=key, **params).get("Attributes")
        return attributes if isinstance(attributes, dict) else {}

    def transact_write(self, operations: list[dict[str, dict[str, Any]]]) -> None:
        """All the operations or none (``TransactWriteItems``), each ``{kind: parameters}`` as
        the API takes it, on this table; a condition that fails is a ConditionFailedError whose
        ``failed`` are the positions of the failing operations."""
        method = self._client.transact_write_items
        items = [
            {kind: {**params, "TableName": self.name} for kind, params in operation.items()}
            for operation in operations
        ]
        _translated("dynamodb", lambda: method(TransactItems=items))

    def scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self._call("scan", ConsistentRead=True, **extra)
            items.extend(page.get("Items") or [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items
