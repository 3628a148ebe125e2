"""A throwaway S3 endpoint for the tests: moto's server mode as a subprocess on a free loopback
port, speaking the S3 protocol over HTTP as MinIO or AWS would.

The server checks signatures: `INITIAL_NO_AUTH_ACTION_COUNT` lets the first few actions through
unsigned, and those create an IAM user with an access key and a policy allowing `s3:*`. Every
later request must be signed with that key; a wrong secret is answered SignatureDoesNotMatch and
an unknown key InvalidAccessKeyId, as AWS does. boto3 (moto's own dependency) sets the server up
and writes objects; the code under test reads them through pyarrow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3

REGION = "us-east-1"
SETUP_ACTIONS = 3  # CreateUser, CreateAccessKey, PutUserPolicy
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    """A running moto server and the one key it accepts."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen
    log_path: Path

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that let a client sign for this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": REGION,
        }

    def client(self):
        """A boto3 S3 client signing with the server's key (to set up what the tests read)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self) -> str:
        """A new empty bucket with a unique name."""
        name = f"clips-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def requests_logged(self) -> list[str]:
        """The request lines the server has logged so far (`"GET /bucket/key HTTP/1.1"` …)."""
        return [line for line in self.log_path.read_text().splitlines() if '"' in line]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3_server(directory: Path, port: int) -> S3Server:
    """Starts moto on 127.0.0.1:`port`, waits until it answers, and creates its IAM key."""
    endpoint_url = f"http://127.0.0.1:{port}"
    log_path = directory / "moto.log"
    environment = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS),
        # The server's own calls must not reach a real AWS account, whatever the machine has.
        "AWS_ACCESS_KEY_ID": "setup",
        "AWS_SECRET_ACCESS_KEY": "setup",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(endpoint_url, process, log_path)
        key_id, secret = _create_key(endpoint_url)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return S3Server(endpoint_url, key_id, secret, process, log_path)


def _create_key(endpoint_url: str) -> tuple[str, str]:
    """The server's first (unsigned) actions: a user, its key, and a policy allowing s3:*."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="clipmesh-tests")
    key = iam.create_access_key(UserName="clipmesh-tests")["AccessKey"]
    iam.put_user_policy(
        UserName="clipmesh-tests", PolicyName="read-write", PolicyDocument=json.dumps(_ALLOW_S3)
    )
    return key["AccessKeyId"], key["SecretAccessKey"]


def _wait_ready(
    endpoint_url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 30
) -> None:
    """Polls moto's own API (which counts as no action) until the server answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
