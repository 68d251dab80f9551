"""The whole local stack in one object: moto server, provisioning, handlers, gateway."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

from . import STOP_POLL_SECONDS
from .gateway import Gateway, serve
from .lambda_runtime import as_lambda
from .moto_aws import REGION, LocalAws, Provisioned, point_boto3_at, provision
from .schedules import Schedules
from .supabase_auth import SupabaseAuthStandIn
from .supabase_dev import LOCAL_JWT_SECRET, LOCAL_SUPABASE_URL
from .template import Handler, Template, deployment_values


def deploy(
    kms: Any = None,
    secrets: Any = None,
    dynamodb: Any = None,
    *,
    supabase_url: str,
    jwt_secret: str,
    issuer: str,
    parameters: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> tuple[Template, Provisioned]:
    """Provision what the template creates in AWS and set the functions' environment.

    The environment is the template's own (Globals and per-function variables, evaluated with
    these parameter values), so names and defaults cannot drift from a real deployment.
    """
    kms = kms or boto3.client("kms", region_name=REGION)  # the ambient AWS: in tests, moto
    secrets = secrets or boto3.client("secretsmanager", region_name=REGION)
    dynamodb = dynamodb or boto3.client("dynamodb", region_name=REGION)
    requested = Template.load(parameters)  # the caller's values checked before anything is made
    alg = requested.parameters["SigningAlgorithm"]
    provisioned = provision(kms, secrets, alg, jwt_secret, dynamodb)
    values = deployment_values(
        supabase_url=supabase_url,
        jwt_secret_arn=provisioned.jwt_secret_arn,
        issuer=issuer,
        parameters=parameters or {},
        signing_key_secret_arn=provisioned.signing_key_secret_arn,
    )
    if values.get("SigningMode") == "secretsmanager":
        # What make deploy writes: the public halves of the signing secrets, read here with the
        # operator's (moto's) credentials, so the JWKS function never reads a private key.
        values.setdefault("SigningPublicKeys", signing_public_keys(secrets, values))
    template = requested.with_parameters(values)
    template.attributes["SigningKey.Arn"] = provisioned.signing_key_arn
    template.attributes["RevocationTable"] = provisioned.revocation_table
    for function in template.functions():
        os.environ.update(template.environment(function))
    os.environ.update(environment or {})
    return template, provisioned


def signing_public_keys(secrets: Any, values: Mapping[str, str]) -> str:
    """``SigningPublicKeys`` for the signing secret and the secrets in ``PublishedKeyIds``."""
    from tokengate.published import public_keys_of_pems

    arns = [values["SigningKeySecretArn"], *values.get("PublishedKeyIds", "").split(",")]
    pems = [
        secrets.get_secret_value(SecretId=arn.strip())["SecretString"].encode()
        for arn in dict.fromkeys(arns)
        if arn.strip()
    ]
    return public_keys_of_pems(pems)


def load_handlers(
    template: Template, into: dict[str, Handler] | None = None, authorizers: bool | None = None
) -> dict[str, Handler]:
    """Each function's handler, run as Lambda runs it (its log lines name it), added to ``into``
    one by one: the authorizers alone (``authorizers=True``), the others alone (``False``), or
    all, the authorizers last. An authorizer's start prefetches keys, the API-token authorizer's
    from this stack's own JWKS function, which must then be loaded and served."""
    handlers = {} if into is None else into
    names = {authorizer.function for authorizer in template.authorizers().values()}
    for name in sorted(template.functions(), key=lambda function: function in names):
        if authorizers is None or (name in names) == authorizers:
            handlers[name] = load_handler(template, name)
    return handlers


def load_handler(template: Template, name: str) -> Handler:
    """One function's handler, loaded as Lambda starts a container for it (its init phase)."""
    saved = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = name  # as Lambda sets it before the init
    try:
        return as_lambda(name, template.load_handler(name))
    finally:
        if saved is None:
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        else:
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = saved


class OnFirstCall(dict[str, Handler]):
    """The template's handlers, each loaded when it is first asked for, as Lambda starts a
    function's first container on its first invocation: a function never called never starts
    (and never reads a secret or fetches a key set)."""

    def __init__(self, template: Template) -> None:
        super().__init__()
        self._template = template
        self._names = frozenset(template.functions())

    def __missing__(self, name: str) -> Handler:
        if name not in self._names:
            raise KeyError(name)
        handler = self[name] = load_handler(self._template, name)
        return handler


# The attributes every LogRecord has; the rest are the fields a handler passed in ``extra`` (and
# those the local Lambda runtime stamps), which the JSON log line carries as Lambda's does.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLinesLog(logging.Handler):
    """The functions' log as CloudWatch Logs would hold it: one JSON object per record
    (``level``, ``logger``, ``message`` and the record's fields), appended to a file that
    ``make smoke`` reads to find the issuance line."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
        line = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        try:
            text = json.dumps(line | fields, default=str, separators=(",", ":"))
            self._file.write(text + "\n")  # under the handler's lock (Handler.handle)
            self._file.flush()
        except Exception:  # noqa: BLE001 - as any logging handler: never fail the caller
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()


def publish_status_list(environment: Mapping[str, str], client: Any, issuer: str) -> None:
    """Sign and store the status list as the exchange function's schedule does, from outside it
    (make revoke on make run, the benchmarks): ``environment`` is the exchange's, ``client``
    makes a boto3 client for a service name."""
    from tokengate import aws
    from tokengate.revocation import RevocationStore, StatusListPublisher

    store = RevocationStore(aws.DynamoTable(client("dynamodb"), environment["REVOCATION_TABLE"]))
    alg = environment.get("SIGNING_ALG", "RS256")
    key = environment["SIGNING_KEY_ID"]
    signer: Any = (
        aws.KmsSigner(key, alg, kms=client("kms"))
        if environment.get("SIGNING_MODE", "kms") == "kms"
        else aws.SecretsManagerSigner(key, alg, secrets=client("secretsmanager"))
    )
    StatusListPublisher(store, signer).publish(issuer)


class LocalStack:
    def __init__(
        self,
        port: int = 3000,
        supabase_url: str = LOCAL_SUPABASE_URL,
        jwt_secret: str = LOCAL_JWT_SECRET,
        parameters: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.supabase_url = supabase_url.rstrip("/")
        self.jwt_secret = jwt_secret
        self._parameters = dict(parameters or {})
        self._environment = dict(environment or {})
        self.aws: LocalAws | None = None
        self._server: Any = None
        self.gateway: Gateway | None = None
        self.stand_in: SupabaseAuthStandIn | None = None  # stopped with the stack
        self.log_path: Path | None = None  # the functions' JSON log lines, while running
        self._log: JsonLinesLog | None = None
        self.schedules: Schedules | None = None

    def start(self) -> LocalStack:
        self.aws = LocalAws().start()
        try:
            self._deploy_and_serve(self.aws)
        except BaseException:
            self.stop()
            raise
        return self

    def _deploy_and_serve(self, aws: LocalAws) -> None:
        point_boto3_at(aws.endpoint)
        template, self.provisioned = deploy(
            aws.client("kms"),
            aws.client("secretsmanager"),
            aws.client("dynamodb"),
            supabase_url=self.supabase_url,
            jwt_secret=self.jwt_secret,
            issuer=self.base_url,
            parameters=self._parameters,
            environment=self._environment,
        )
        exchange = template.environment("TokenExchangeFunction")
        if exchange.get("REVOCATION_TABLE"):
            # A deployed stack's status list exists before its first caller (its schedule, or
            # the first exchange, published it): so does this one's, without invoking a handler.
            publish_status_list(exchange, aws.client, exchange.get("ISSUER") or self.base_url)
        self.log_path = Path(tempfile.mkdtemp(prefix="tokengate-local-")) / "functions.log"
        self._log = JsonLinesLog(self.log_path)
        logging.getLogger("tokengate").addHandler(self._log)
        # The functions start before the port is taken (a bad setting stops them first, in one
        # line), the authorizers once it listens, as in AWS: an authorizer's start fetches this
        # stack's JWKS through the gateway (a refused connection would be a warning at start).
        self.gateway = Gateway(template, load_handlers(template, authorizers=False))
        # Powertools' Logger takes the "tokengate" logger's first handler for its own once a
        # Logger of that service exists: ours goes last, so that a second stack in this process
        # (tests run two at once) finds Powertools' handler first, not a plain one.
        logging.getLogger("tokengate").removeHandler(self._log)
        logging.getLogger("tokengate").addHandler(self._log)
        self._server = serve(self.gateway, self.port)
        threading.Thread(
            target=self._server.serve_forever, args=(STOP_POLL_SECONDS,), daemon=True
        ).start()
        load_handlers(template, into=self.gateway.handlers, authorizers=True)
        self.schedules = Schedules(template, self.gateway.handlers).start()

    def stop_aws(self) -> None:
        """Stop the moto server alone (to see the service fail closed)."""
        if self.aws is not None:
            self.aws.stop()
            self.aws = None

    def stop(self) -> None:
        if self.schedules is not None:
            self.schedules.stop()
            self.schedules = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        if self.stand_in is not None:
            self.stand_in.stop()
            self.stand_in = None
        if self._log is not None:
            logging.getLogger("tokengate").removeHandler(self._log)
            self._log.close()
            self._log = None
        if self.log_path is not None:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
            self.log_path = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
