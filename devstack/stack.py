"""The whole local stack in one object: moto server, provisioning, handlers, gateway."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from tokengate import aws as tokengate_aws

from .gateway import Gateway, serve
from .moto_aws import LocalAws, point_boto3_at, provision
from .supabase_dev import LOCAL_JWT_SECRET, LOCAL_SUPABASE_URL
from .template import Template


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
        self._thread: threading.Thread | None = None
        self.gateway: Gateway | None = None

    def start(self) -> LocalStack:
        self.aws = LocalAws().start()
        point_boto3_at(self.aws.endpoint)
        tokengate_aws.client.cache_clear()
        defaults = Template.load().parameters
        alg = self._parameters.get("SigningAlgorithm", defaults["SigningAlgorithm"])
        provisioned = provision(
            self.aws.client("kms"), self.aws.client("secretsmanager"), alg, self.jwt_secret
        )
        parameters = {
            "SupabaseUrl": self.supabase_url,
            "SupabaseJwtSecretArn": provisioned.jwt_secret_arn,
            "Issuer": self.base_url,
        }
        parameters.update(self._parameters)
        if parameters.get("SigningMode") == "secretsmanager":
            parameters.setdefault("SigningKeySecretArn", provisioned.signing_key_secret_arn)
        template = Template.load(parameters)
        template.attributes["SigningKey.Arn"] = provisioned.signing_key_arn
        for function in template.functions():
            os.environ.update(template.environment(function))
        os.environ["API_JWKS_URL"] = f"{self.base_url}/.well-known/jwks.json"
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.update(self._environment)
        self.provisioned = provisioned
        handlers = {name: template.load_handler(name) for name in template.functions()}
        self.gateway = Gateway(template, handlers)
        self._server = serve(self.gateway, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop_aws(self) -> None:
        """Stop the moto server alone (to see the service fail closed)."""
        if self.aws is not None:
            self.aws.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
