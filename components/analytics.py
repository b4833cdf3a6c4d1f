"""Analytics component: every metric data point and every event from the collector's log groups into an S3
Parquet data lake, Glue tables with partition projection, an Athena workgroup and named queries.

Flow: log group --subscription filter--> Firehose (one stream per table) --transform Lambda--> rows partitioned
by the event's own time --Parquet conversion from the Glue schema--> s3://<lake>/<table>/dt=.../hour=.../.
Records the transform cannot use land under `errors/<table>/` with Firehose's error type; nothing is dropped
silently. The lake is encrypted with its own KMS key, versioned, TLS-only and private; its lifecycle only uses
storage classes Athena reads (Standard-IA, Glacier Instant Retrieval), never Glacier Flexible Retrieval or
Deep Archive.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import Alarm, raise_alarms
from components.analytics_queries import QuerySettings, named_queries
from components.iam import service_trust_policy
from components.lambda_code import python_function
from components.s3 import deny_insecure_transport, make_private
from lambda_src.common.lake_schema import PARTITION_KEYS, PARTITIONED_TABLES, TABLES, Column
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE, PriceTable
from lambda_src.common.telemetry import EARLIEST_EVENT_DAY

TRANSFORM_FUNCTION = "analytics_transform"
PROJECTION_START = EARLIEST_EVENT_DAY  # the transform books nothing earlier; the range has no end year (NOW)
ATHENA_ENGINE = "Athena engine version 3"
ATHENA_READABLE_CLASSES = ("STANDARD_IA", "GLACIER_IR")  # Glacier Flexible Retrieval / Deep Archive are not
TRANSFORM_BUFFER_MB = "0.2"  # the smallest: a gzip batch expands ~10x and a Lambda response holds 6 MB
TRANSFORM_BUFFER_BYTES = int(float(TRANSFORM_BUFFER_MB) * 1_000_000)
PARQUET = {
    "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "ser_de_info": {
        "serialization_library": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "parameters": {"serialization.format": "1"},
    },
}
JSON_LINES = {
    "input_format": "org.apache.hadoop.mapred.TextInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    "ser_de_info": {"serialization_library": "org.openx.data.jsonserde.JsonSerDe"},
}


class InvalidAnalyticsArgs(pulumi.RunError):
    """Arguments that cannot work; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class AnalyticsArgs:
    metrics_log_group: pulumi.Input[str]
    """Name of the log group with the collector's EMF metric events."""
    events_log_group: pulumi.Input[str]
    """Name of the log group with the Claude Code events."""
    region: str
    alarm_topic_arn: pulumi.Input[str]
    buffering_interval_seconds: int = 300
    buffering_size_mb: int = 128
    """Firehose buffer before a Parquet file is written: 64 to 128 MiB (dynamic partitioning needs 64)."""
    infrequent_access_after_days: int | None = 90
    glacier_instant_retrieval_after_days: int | None = None
    expiration_days: int | None = 730
    results_expiration_days: int = 7
    bytes_scanned_cutoff_mb: int = 10240
    log_retention_days: int = 30
    queries: QuerySettings = field(default_factory=QuerySettings)
    prices: PriceTable = DEFAULT_PRICE_TABLE
    """The prices table the queries join on; the transform resolves each row's model to its key."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if not 60 <= self.buffering_interval_seconds <= 900:
            found.append(f"buffering_interval_seconds must be from 60 to 900, got {self.buffering_interval_seconds}")
        if not 64 <= self.buffering_size_mb <= 128:
            found.append(f"buffering_size_mb must be from 64 to 128, got {self.buffering_size_mb}")
        if self.infrequent_access_after_days is not None and self.infrequent_access_after_days < 30:
            found.append(f"infrequent_access_after_days must be at least 30, got {self.infrequent_access_after_days}")
        steps = [d for d in lifecycle_days(self) if d is not None]
        if steps != sorted(set(steps)):
            found.append(
                "infrequent_access_after_days < glacier_instant_retrieval_after_days < expiration_days is required, "
                f"got {lifecycle_days(self)}"
            )
        if not 1 <= self.results_expiration_days <= 365:
            found.append(f"results_expiration_days must be from 1 to 365, got {self.results_expiration_days}")
        if self.bytes_scanned_cutoff_mb < 10:
            found.append(
                f"bytes_scanned_cutoff_mb must be at least 10 (Athena's minimum), got {self.bytes_scanned_cutoff_mb}"
            )
        return found


def lifecycle_days(args: AnalyticsArgs) -> tuple[int | None, int | None, int | None]:
    return args.infrequent_access_after_days, args.glacier_instant_retrieval_after_days, args.expiration_days


def lake_lifecycle_rules(args: AnalyticsArgs) -> list[dict[str, Any]]:
    """Per data prefix: transitions Athena can still read, expiry, old versions and stale uploads cleaned up.
    The prices prefix is left alone: the program owns that object."""
    transitions = [
        {"days": days, "storage_class": storage_class}
        for days, storage_class in zip(lifecycle_days(args)[:2], ATHENA_READABLE_CLASSES, strict=True)
        if days is not None
    ]
    rules = []
    for prefix in (*PARTITIONED_TABLES, "errors"):
        rule: dict[str, Any] = {
            "id": f"{prefix}-lifecycle",
            "status": "Enabled",
            "filter": {"prefix": f"{prefix}/"},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            "noncurrent_version_expiration": {"noncurrent_days": 30},
        }
        if transitions:
            rule["transitions"] = transitions
        if args.expiration_days is not None:
            rule["expiration"] = {"days": args.expiration_days}
        rules.append(rule)
    return rules


def tls_only_bucket_policy(bucket_arn: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [deny_insecure_transport(bucket_arn)]}


def glue_columns(columns: Sequence[Column]) -> list[Any]:
    return [{"name": c.name, "type": c.type, "comment": c.comment or c.attribute or ""} for c in columns]


def projection_parameters(bucket: str, table: str) -> dict[str, str]:
    """Partition projection on the event's UTC date and hour; the date range ends at NOW, never in a fixed year."""
    return {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{PROJECTION_START},NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": f"s3://{bucket}/{table}/dt=${{dt}}/hour=${{hour}}/",
    }


def table_location(bucket: str, table: str) -> str:
    return f"s3://{bucket}/{table}/"


def firehose_prefixes(table: str) -> tuple[str, str]:
    """(data prefix, error prefix): the data under the partition the transform chose from the event's time."""
    return (
        f"{table}/dt=!{{partitionKeyFromLambda:dt}}/hour=!{{partitionKeyFromLambda:hour}}/",
        f"errors/{table}/!{{firehose:error-output-type}}/!{{timestamp:yyyy-MM-dd}}/",
    )


def prices_document(prices: PriceTable) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in prices.rows())


def firehose_policy(
    bucket_arn: str, key_arn: str, function_arn: str, glue_arns: Sequence[str], log_group_arn: str, region: str
) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteLake",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:PutObject",
                ],
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
            },
            {
                "Sid": "EncryptLake",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            },
            {
                "Sid": "Transform",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                "Resource": [function_arn, f"{function_arn}:*"],
            },
            {
                "Sid": "ReadSchema",
                "Effect": "Allow",
                "Action": ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                "Resource": list(glue_arns),
            },
            {
                "Sid": "WriteDeliveryLogs",
                "Effect": "Allow",
                "Action": "logs:PutLogEvents",
                "Resource": f"{log_group_arn}:*",
            },
        ],
    }


def transform_statements(stream_arns: Sequence[str]) -> list[dict[str, Any]]:
    """Put rows back into the streams."""
    return [
        {"Sid": "PutRowsBack", "Effect": "Allow", "Action": "firehose:PutRecordBatch", "Resource": list(stream_arns)}
    ]


def subscription_policy(stream_arns: Sequence[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
                "Resource": list(stream_arns),
            }
        ],
    }


def logs_trust_policy(region: str, account_id: str, partition: str) -> dict[str, Any]:
    """CloudWatch Logs may assume the role, for this account's log groups only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"}},
            }
        ],
    }


def analyst_policy(
    workgroup_arn: str, glue_arns: Sequence[str], lake_arn: str, results_arn: str, key_arn: str
) -> dict[str, Any]:
    """Run the named queries and read their results: the workgroup, the tables, the lake and results buckets."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RunQueries",
                "Effect": "Allow",
                "Action": [
                    "athena:StartQueryExecution",
                    "athena:StopQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:GetWorkGroup",
                    "athena:ListNamedQueries",
                    "athena:GetNamedQuery",
                    "athena:BatchGetNamedQuery",
                ],
                "Resource": workgroup_arn,
            },
            {
                "Sid": "ReadCatalog",
                "Effect": "Allow",
                "Action": ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"],
                "Resource": list(glue_arns),
            },
            {
                "Sid": "ReadLake",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [lake_arn, f"{lake_arn}/*"],
            },
            {
                "Sid": "WriteResults",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": [results_arn, f"{results_arn}/*"],
            },
            {
                "Sid": "UseLakeKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": key_arn,
            },
        ],
    }


class Analytics(pulumi.ComponentResource):
    """The data lake, its Firehose streams and transform, the Glue catalog and the Athena workgroup."""

    def __init__(self, name: str, args: AnalyticsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("claude-code-monitoring:index:Analytics", name, None, opts)
        problems = args.problems()
        if problems:
            raise InvalidAnalyticsArgs(f"Analytics {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke).partition
        account = identity.account_id
        tags = {**args.tags, "component": "Analytics"}

        key = aws.kms.Key(
            f"{name}-lake",
            description=f"{name}: Claude Code data lake and query results",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-lake", name=f"alias/{name}-lake", target_key_id=key.key_id, opts=child)
        lake = self._bucket(f"{name}-lake", key, tags, versioned=True, lifecycle=lake_lifecycle_rules(args))
        results = self._bucket(
            f"{name}-results",
            key,
            tags,
            versioned=False,
            lifecycle=[
                {
                    "id": "expire-results",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": args.results_expiration_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
        )

        # Catalog --------------------------------------------------------------------------------------
        database = aws.glue.CatalogDatabase(
            f"{name}-db",
            name=f"{name}_db".replace("-", "_"),
            description="Claude Code telemetry: metrics, events and prices",
            opts=child,
        )
        tables: dict[str, aws.glue.CatalogTable] = {}
        for table, columns in TABLES.items():
            partitioned = table in PARTITIONED_TABLES
            parameters: Any = (
                lake.bucket.apply(functools.partial(projection_parameters, table=table))
                if partitioned
                else {"classification": "json", "EXTERNAL": "TRUE"}
            )
            storage: Any = {
                "location": lake.bucket.apply(functools.partial(table_location, table=table)),
                "columns": glue_columns(columns),
                **(PARQUET if partitioned else JSON_LINES),
            }
            tables[table] = aws.glue.CatalogTable(
                f"{name}-{table}",
                name=table,
                database_name=database.name,
                table_type="EXTERNAL_TABLE",
                description=f"Claude Code {table}",
                parameters=parameters,
                partition_keys=glue_columns(PARTITION_KEYS) if partitioned else None,
                storage_descriptor=storage,
                opts=child,
            )
        aws.s3.BucketObjectv2(
            f"{name}-prices",
            bucket=lake.id,
            key="prices/prices.json",
            content=prices_document(args.prices),
            content_type="application/x-ndjson",
            server_side_encryption="aws:kms",
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        glue_arns = pulumi.Output.all(account, partition, database.name, *[t.name for t in tables.values()]).apply(
            lambda v: [
                f"arn:{v[1]}:glue:{args.region}:{v[0]}:catalog",
                f"arn:{v[1]}:glue:{args.region}:{v[0]}:database/{v[2]}",
                *[f"arn:{v[1]}:glue:{args.region}:{v[0]}:table/{v[2]}/{t}" for t in v[3:]],
            ]
        )

        # Transform ------------------------------------------------------------------------------------
        transform_function = python_function(
            f"{name}-transform",
            folder=TRANSFORM_FUNCTION,
            description="Firehose transform: CloudWatch Logs batches to lake rows partitioned by event time",
            environment={
                "METRICS_LOG_GROUP": args.metrics_log_group,
                "EVENTS_LOG_GROUP": args.events_log_group,
                PRICE_TABLE_VARIABLE: args.prices.to_json(),
            },
            account_id=account,
            parent=self,
            timeout=120,
            memory_size=512,
            log_retention_days=args.log_retention_days,
            tags=tags,
        )
        transform = transform_function.function

        # Firehose -------------------------------------------------------------------------------------
        delivery_logs = aws.cloudwatch.LogGroup(
            f"{name}-delivery",
            name=f"/aws/kinesisfirehose/{name}",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        firehose_role = aws.iam.Role(
            f"{name}-firehose",
            assume_role_policy=account.apply(lambda a: json.dumps(service_trust_policy("firehose.amazonaws.com", a))),
            tags=tags,
            opts=child,
        )
        firehose_role_policy = aws.iam.RolePolicy(
            f"{name}-firehose",
            role=firehose_role.id,
            policy=pulumi.Output.all(lake.arn, key.arn, transform.arn, glue_arns, delivery_logs.arn).apply(
                lambda v: json.dumps(firehose_policy(v[0], v[1], v[2], v[3], v[4], args.region))
            ),
            opts=child,
        )
        streams: dict[str, aws.kinesis.FirehoseDeliveryStream] = {}
        for table in PARTITIONED_TABLES:
            aws.cloudwatch.LogStream(
                f"{name}-{table}-delivery", name=table, log_group_name=delivery_logs.name, opts=child
            )
            prefix, error_prefix = firehose_prefixes(table)
            streams[table] = aws.kinesis.FirehoseDeliveryStream(
                f"{name}-{table}",
                name=f"{name}-{table}",
                destination="extended_s3",
                server_side_encryption={"enabled": True, "key_type": "AWS_OWNED_CMK"},
                extended_s3_configuration={
                    "role_arn": firehose_role.arn,
                    "bucket_arn": lake.arn,
                    "prefix": prefix,
                    "error_output_prefix": error_prefix,
                    "buffering_size": args.buffering_size_mb,
                    "buffering_interval": args.buffering_interval_seconds,
                    "compression_format": "UNCOMPRESSED",  # Parquet compresses its pages (Snappy)
                    "kms_key_arn": key.arn,
                    "cloudwatch_logging_options": {
                        "enabled": True,
                        "log_group_name": delivery_logs.name,
                        "log_stream_name": table,
                    },
                    "dynamic_partitioning_configuration": {"enabled": True, "retry_duration": 300},
                    "processing_configuration": {
                        "enabled": True,
                        "processors": [
                            {
                                "type": "Lambda",
                                "parameters": [
                                    {"parameter_name": "LambdaArn", "parameter_value": transform.arn},
                                    {"parameter_name": "BufferSizeInMBs", "parameter_value": TRANSFORM_BUFFER_MB},
                                    {"parameter_name": "BufferIntervalInSeconds", "parameter_value": "60"},
                                    {"parameter_name": "NumberOfRetries", "parameter_value": "3"},
                                ],
                            }
                        ],
                    },
                    "data_format_conversion_configuration": {
                        "enabled": True,
                        "input_format_configuration": {"deserializer": {"open_x_json_ser_de": {}}},
                        "output_format_configuration": {"serializer": {"parquet_ser_de": {"compression": "SNAPPY"}}},
                        "schema_configuration": {
                            "database_name": database.name,
                            "table_name": tables[table].name,
                            "role_arn": firehose_role.arn,
                            "region": args.region,
                            "version_id": "LATEST",
                        },
                    },
                },
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[firehose_role_policy]),
            )
        stream_arns = pulumi.Output.all(*[stream.arn for stream in streams.values()])
        transform_function.allow(stream_arns.apply(transform_statements))

        # Subscriptions: one per log group (a log group takes at most two) -------------------------------
        subscription_role = aws.iam.Role(
            f"{name}-subscription",
            assume_role_policy=pulumi.Output.all(account, partition).apply(
                lambda v: json.dumps(logs_trust_policy(args.region, v[0], v[1]))
            ),
            tags=tags,
            opts=child,
        )
        subscription_role_policy = aws.iam.RolePolicy(
            f"{name}-subscription",
            role=subscription_role.id,
            policy=stream_arns.apply(lambda arns: json.dumps(subscription_policy(arns))),
            opts=child,
        )
        log_groups = {"metrics": args.metrics_log_group, "events": args.events_log_group}
        for table, stream in streams.items():
            aws.cloudwatch.LogSubscriptionFilter(
                f"{name}-{table}",
                name=f"{name}-analytics",
                log_group=log_groups[table],
                filter_pattern="",
                destination_arn=stream.arn,
                role_arn=subscription_role.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[subscription_role_policy]),
            )

        # Athena ---------------------------------------------------------------------------------------
        workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=f"{name}-workgroup",
            description="Claude Code analytics: enforced settings, encrypted results, a per-query scan limit",
            state="ENABLED",
            configuration={
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": args.bytes_scanned_cutoff_mb * 1024 * 1024,
                "engine_version": {"selected_engine_version": ATHENA_ENGINE},
                "result_configuration": {
                    "output_location": results.bucket.apply(lambda bucket: f"s3://{bucket}/"),
                    "encryption_configuration": {"encryption_option": "SSE_KMS", "kms_key_arn": key.arn},
                    "expected_bucket_owner": account,
                },
            },
            tags=tags,
            opts=child,
        )
        queries = named_queries(args.queries)
        for query_name, query in queries.items():
            aws.athena.NamedQuery(
                f"{name}-{query_name}",
                name=query_name,
                description=query.description[:1024],
                database=database.name,
                workgroup=workgroup.id,
                query=query.sql,
                opts=child,
            )
        analyst = aws.iam.Policy(
            f"{name}-analyst",
            description="Run the Claude Code analytics queries in their workgroup and read the results",
            policy=pulumi.Output.all(workgroup.arn, glue_arns, lake.arn, results.arn, key.arn).apply(
                lambda v: json.dumps(analyst_policy(v[0], v[1], v[2], v[3], v[4]))
            ),
            tags=tags,
            opts=child,
        )

        self._alarms(name, args, transform, streams, log_groups, tags)

        self.lake_bucket = lake.bucket
        self.results_bucket = results.bucket
        self.database_name = database.name
        self.workgroup_name = workgroup.name
        self.stream_names = pulumi.Output.all(**{table: stream.name for table, stream in streams.items()})
        self.named_query_names = sorted(queries)
        self.analyst_policy_arn = analyst.arn
        self.register_outputs(
            {
                "lakeBucket": self.lake_bucket,
                "resultsBucket": self.results_bucket,
                "databaseName": self.database_name,
                "workgroupName": self.workgroup_name,
                "streamNames": self.stream_names,
                "namedQueries": self.named_query_names,
                "analystPolicyArn": self.analyst_policy_arn,
            }
        )

    def _bucket(
        self, name: str, key: aws.kms.Key, tags: Mapping[str, str], versioned: bool, lifecycle: Sequence[Any]
    ) -> aws.s3.Bucket:
        """A private, KMS-encrypted, TLS-only bucket with the given lifecycle."""
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, bucket_prefix=f"{name}-"[:37], tags=dict(tags), opts=child)
        public_access = make_private(name, bucket, child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        if versioned:
            aws.s3.BucketVersioning(name, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketLifecycleConfiguration(name, bucket=bucket.id, rules=lifecycle, opts=child)
        aws.s3.BucketPolicy(
            name,
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_bucket_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        return bucket

    def _alarms(
        self,
        name: str,
        args: AnalyticsArgs,
        transform: aws.lambda_.Function,
        streams: Mapping[str, aws.kinesis.FirehoseDeliveryStream],
        log_groups: Mapping[str, pulumi.Input[str]],
        tags: Mapping[str, str],
    ) -> None:
        """Data that stops arriving or cannot be delivered pages the operations topic."""
        alarms = [
            Alarm(
                "transform-errors",
                "The analytics transform failed: Firehose retries, then sends the records to errors/",
                "AWS/Lambda",
                "Errors",
                {"FunctionName": transform.name},
            )
        ]
        for table, stream in streams.items():
            stream_of = {"DeliveryStreamName": stream.name}
            alarms += [
                Alarm(
                    f"{table}-freshness",
                    f"{table}: the oldest record in Firehose waits longer than three buffer intervals",
                    "AWS/Firehose",
                    "DeliveryToS3.DataFreshness",
                    stream_of,
                    statistic="Maximum",
                    threshold=3 * args.buffering_interval_seconds,
                    evaluation_periods=3,
                ),
                Alarm(
                    f"{table}-conversion",
                    f"{table}: records failed Parquet conversion and went to errors/{table}/",
                    "AWS/Firehose",
                    "FailedConversion.Records",
                    stream_of,
                ),
                Alarm(
                    f"{table}-subscription",
                    f"{table}: CloudWatch Logs could not deliver log events to Firehose",
                    "AWS/Logs",
                    "DeliveryErrors",
                    {
                        "LogGroupName": log_groups[table],
                        "DestinationType": "Firehose",
                        "FilterName": f"{name}-analytics",
                    },
                ),
            ]
        raise_alarms(name, alarms, args.alarm_topic_arn, tags, parent=self)
