"""The moto fixtures of the Lambda tests (a moto server on 127.0.0.1, its clients, the aggregator wired to a
rollup table), for the live pipeline tests here."""

from tests.lambda_src.conftest import aws_client, deployed, moto_endpoint

__all__ = ["aws_client", "deployed", "moto_endpoint"]
