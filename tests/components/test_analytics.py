"""Analytics under mocks: buckets, lifecycle, projection, Firehose, subscriptions, workgroup, queries, IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.analytics import (
    ATHENA_READABLE_CLASSES,
    AnalyticsArgs,
    firehose_prefixes,
    lake_lifecycle_rules,
    projection_parameters,
)
from infra.config import ConfigError, parse_stack_config
from lambda_src.common.lake_schema import EVENTS_COLUMNS, METRICS_COLUMNS
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE
from offline.engine import Registration
from offline.preview import PreviewResult


def analytics(result: PreviewResult, token: str) -> list[Registration]:
    return [r for r in result.run.registrations if r.type == token and "index:Analytics$" in r.urn]


def one(result: PreviewResult, token: str, name_part: str = "") -> dict[str, Any]:
    (found,) = [r.inputs() for r in analytics(result, token) if name_part in r.name]
    return found


def args(**change: Any) -> AnalyticsArgs:
    base: dict[str, Any] = {
        "metrics_log_group": "/m",
        "events_log_group": "/e",
        "region": "eu-west-1",
        "alarm_topic_arn": "arn:aws:sns:eu-west-1:1:t",
    }
    return AnalyticsArgs(**{**base, **change})


def test_projection_has_no_end_year_and_matches_where_firehose_writes() -> None:
    parameters = projection_parameters("lake", "metrics")
    assert parameters["projection.dt.range"].endswith(",NOW")
    assert (parameters["projection.hour.range"], parameters["projection.hour.digits"]) == ("0,23", "2")
    template = parameters["storage.location.template"]
    prefix, error_prefix = firehose_prefixes("metrics")
    as_written = prefix.replace("!{partitionKeyFromLambda:dt}", "${dt}").replace(
        "!{partitionKeyFromLambda:hour}", "${hour}"
    )
    assert template == f"s3://lake/{as_written}"
    assert error_prefix.startswith("errors/metrics/!{firehose:error-output-type}/")


def test_lifecycle_uses_only_classes_athena_reads_and_spares_the_prices() -> None:
    rules = lake_lifecycle_rules(args(infrequent_access_after_days=30, glacier_instant_retrieval_after_days=120))
    assert {rule["filter"]["prefix"] for rule in rules} == {"metrics/", "events/", "errors/"}
    for rule in rules:
        assert [t["storage_class"] for t in rule["transitions"]] == list(ATHENA_READABLE_CLASSES)
        assert rule["expiration"] == {"days": 730}
    assert not set(ATHENA_READABLE_CLASSES) & {"GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"}


def test_lake_and_results_buckets_are_private_encrypted_and_tls_only(prod_preview: PreviewResult) -> None:
    buckets = analytics(prod_preview, "aws:s3/bucket:Bucket")
    assert {b.name for b in buckets} == {"ccm-prod-analytics-lake", "ccm-prod-analytics-results"}
    for bucket in buckets:
        encryption = one(
            prod_preview,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket.name,
        )
        default = encryption["rules"][0]["applyServerSideEncryptionByDefault"]
        assert default["sseAlgorithm"] == "aws:kms" and default["kmsMasterKeyId"].startswith("arn:aws:kms:")
        block = one(prod_preview, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket.name)
        assert all(
            block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        policy = json.loads(one(prod_preview, "aws:s3/bucketPolicy:BucketPolicy", bucket.name)["policy"])
        (deny,) = policy["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    versioning = one(prod_preview, "aws:s3/bucketVersioning:BucketVersioning", "lake")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"


def test_lifecycle_follows_the_stack_config(prod_preview: PreviewResult) -> None:
    lake = one(prod_preview, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lake")
    metrics = next(rule for rule in lake["rules"] if rule["filter"]["prefix"] == "metrics/")
    assert [(t["days"], t["storageClass"]) for t in metrics["transitions"]] == [
        (90, "STANDARD_IA"),
        (365, "GLACIER_IR"),
    ]
    assert metrics["expiration"]["days"] == 1096
    results = one(prod_preview, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "results")
    assert results["rules"][0]["expiration"]["days"] == 7


def test_glue_tables_follow_the_lake_schema(prod_preview: PreviewResult) -> None:
    tables = {r.inputs()["name"]: r.inputs() for r in analytics(prod_preview, "aws:glue/catalogTable:CatalogTable")}
    assert set(tables) == {"metrics", "events", "prices"}
    for name, columns in (("metrics", METRICS_COLUMNS), ("events", EVENTS_COLUMNS)):
        table = tables[name]
        assert [c["name"] for c in table["storageDescriptor"]["columns"]] == [c.name for c in columns]
        assert [k["name"] for k in table["partitionKeys"]] == ["dt", "hour"]
        assert table["parameters"]["projection.enabled"] == "true"
        assert table["parameters"]["projection.dt.range"] == "2025-01-01,NOW"
        serde = table["storageDescriptor"]["serDeInfo"]["serializationLibrary"]
        assert serde == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert (
        tables["prices"]["storageDescriptor"]["serDeInfo"]["serializationLibrary"]
        == "org.openx.data.jsonserde.JsonSerDe"
    )


def test_the_prices_table_is_fed_from_the_shared_price_table(prod_preview: PreviewResult) -> None:
    prices = one(prod_preview, "aws:s3/bucketObjectv2:BucketObjectv2", "prices")
    assert prices["key"] == "prices/prices.json" and prices["serverSideEncryption"] == "aws:kms"
    rows = [json.loads(line) for line in prices["content"].splitlines()]
    assert rows == [json.loads(json.dumps(row, sort_keys=True)) for row in DEFAULT_PRICE_TABLE.rows()]


def test_each_table_has_a_stream_with_the_transform_partitioning_and_parquet(prod_preview: PreviewResult) -> None:
    streams = {
        r.inputs()["name"]: r.inputs()
        for r in analytics(prod_preview, "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")
    }
    assert set(streams) == {"ccm-prod-analytics-metrics", "ccm-prod-analytics-events"}
    for table in ("metrics", "events"):
        s3 = streams[f"ccm-prod-analytics-{table}"]["extendedS3Configuration"]
        assert (s3["prefix"], s3["errorOutputPrefix"]) == firehose_prefixes(table)
        assert (s3["bufferingSize"], s3["bufferingInterval"]) == (128, 300)
        assert s3["dynamicPartitioningConfiguration"]["enabled"] is True
        assert s3["kmsKeyArn"].startswith("arn:aws:kms:")
        (processor,) = s3["processingConfiguration"]["processors"]
        parameters = {p["parameterName"]: p["parameterValue"] for p in processor["parameters"]}
        assert parameters["LambdaArn"].endswith(":function:ccm-prod-analytics-transform")
        assert parameters["BufferSizeInMBs"] == "0.2"
        conversion = s3["dataFormatConversionConfiguration"]
        assert conversion["schemaConfiguration"]["tableName"] == table
        assert conversion["outputFormatConfiguration"]["serializer"]["parquetSerDe"]["compression"] == "SNAPPY"


def test_each_log_group_has_one_subscription_to_its_stream(prod_preview: PreviewResult) -> None:
    filters = {
        r.inputs()["logGroup"]: r.inputs()
        for r in analytics(prod_preview, "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter")
    }
    assert set(filters) == {"/ccm-prod-collector/metrics", "/ccm-prod-collector/events"}
    assert filters["/ccm-prod-collector/metrics"]["destinationArn"].endswith(
        "deliverystream/ccm-prod-analytics-metrics"
    )
    assert filters["/ccm-prod-collector/events"]["filterPattern"] == ""


def test_the_transform_knows_the_log_groups_and_may_only_put_back_into_its_streams(prod_preview: PreviewResult) -> None:
    function = one(prod_preview, "aws:lambda/function:Function", "transform")
    assert (
        function["runtime"] == "python3.12" and function["handler"] == "lambda_src.analytics_transform.handler.handler"
    )
    assert function["environment"]["variables"] == {
        "METRICS_LOG_GROUP": "/ccm-prod-collector/metrics",
        "EVENTS_LOG_GROUP": "/ccm-prod-collector/events",
        PRICE_TABLE_VARIABLE: DEFAULT_PRICE_TABLE.to_json(),  # the prod stack sets no prices of its own
    }
    policy = json.loads(one(prod_preview, "aws:iam/rolePolicy:RolePolicy", "transform")["policy"])
    put_back = next(s for s in policy["Statement"] if s["Sid"] == "PutRowsBack")
    assert put_back["Action"] == "firehose:PutRecordBatch" and all(
        "deliverystream/" in arn for arn in put_back["Resource"]
    )


def test_no_policy_grants_a_wildcard_action_or_resource(prod_preview: PreviewResult) -> None:
    documents = [json.loads(r.inputs()["policy"]) for r in analytics(prod_preview, "aws:iam/rolePolicy:RolePolicy")]
    documents += [json.loads(r.inputs()["policy"]) for r in analytics(prod_preview, "aws:iam/policy:Policy")]
    assert len(documents) == 4  # transform, firehose, subscription, analyst
    for document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert not any(action.endswith(":*") or action == "*" for action in actions), statement
            assert "*" not in resources, statement


def test_the_workgroup_enforces_encrypted_results_and_a_scan_limit(prod_preview: PreviewResult) -> None:
    configuration = one(prod_preview, "aws:athena/workgroup:Workgroup")["configuration"]
    assert configuration["enforceWorkgroupConfiguration"] is True
    assert configuration["bytesScannedCutoffPerQuery"] == 10240 * 1024 * 1024
    assert configuration["engineVersion"]["selectedEngineVersion"] == "Athena engine version 3"
    results = configuration["resultConfiguration"]
    assert results["encryptionConfiguration"]["encryptionOption"] == "SSE_KMS"
    assert results["outputLocation"].startswith("s3://ccm-prod-analytics-results")


def test_named_queries_are_created_and_written_by_the_preview(prod_preview: PreviewResult) -> None:
    queries = [r.inputs() for r in analytics(prod_preview, "aws:athena/namedQuery:NamedQuery")]
    assert len(queries) >= 12
    assert {q["database"] for q in queries} == {"ccm_prod_analytics_db"}
    sql_files = {path.stem for path in prod_preview.artifacts if path.suffix == ".sql"}
    assert sql_files == {q["name"] for q in queries}
    quota = next(q for q in queries if q["name"] == "quota_tracking")
    assert "('team', 'interns'" in quota["query"] and "Europe/Berlin" in quota["query"]  # from the quota section


def test_alarms_watch_the_transform_delivery_conversion_and_subscriptions(prod_preview: PreviewResult) -> None:
    metrics = sorted(
        r.inputs()["metricName"] for r in analytics(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")
    )
    assert metrics == sorted(
        ["Errors"] + ["DeliveryToS3.DataFreshness", "FailedConversion.Records", "DeliveryErrors"] * 2
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"buffering_size_mb": 32}, "buffering_size_mb must be from 64 to 128"),
        ({"infrequent_access_after_days": 10}, "infrequent_access_after_days must be at least 30"),
        ({"glacier_instant_retrieval_after_days": 400, "expiration_days": 365}, "is required, got (90, 400, 365)"),
        ({"bytes_scanned_cutoff_mb": 1}, "bytes_scanned_cutoff_mb must be at least 10"),
    ],
)
def test_arguments_that_cannot_work_are_refused(change: dict[str, Any], message: str) -> None:
    assert any(message in problem for problem in args(**change).problems())


def test_analytics_without_the_collector_is_a_config_error() -> None:
    raw = {
        "aws:region": "eu-west-1",
        "claude-code-monitoring:collector": {"enabled": False},
        "claude-code-monitoring:analytics": {"enabled": True},
    }
    with pytest.raises(ConfigError, match=r"analytics\.enabled needs collector\.enabled"):
        parse_stack_config(raw, "Pulumi.dev.yaml")
