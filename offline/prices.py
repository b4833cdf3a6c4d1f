"""The prices `offline/cost.py` applies (eu-west-1 on-demand list prices, each with its source and the day it was
looked up) and how Lambda turns measured CPU into GB-seconds. The benchmarks price with them too."""

from __future__ import annotations

from dataclasses import dataclass

REGION = "eu-west-1"
LOOKED_UP = "2026-11-29"
LAMBDA_MB_PER_VCPU = 1769  # Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB
TRANSACTION_WRITE_UNITS = 2
"""Write request units of an item of up to 1 KB written in a DynamoDB transaction."""
DYNAMODB_CALL_SECONDS = 0.010
"""Assumed: a round trip to DynamoDB from Lambda in the same region (a transaction of up to 100 items, a batch
get). The function waits, and is billed for it."""

_OFFER = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{service}/{version}/eu-west-1/index.json"
# The dated offer files the prices were read from, one per service ("current" where a row says so).
ELB_OFFER = _OFFER.format(service="AWSELB", version="20260911124544")
LAMBDA_OFFER = _OFFER.format(service="AWSLambda", version="20261001184746")
SECRETS_MANAGER_OFFER = _OFFER.format(service="AWSSecretsManager", version="20260911124610")
CLOUDWATCH_OFFER = _OFFER.format(service="AmazonCloudWatch", version="20260922021715")
DYNAMODB_OFFER = _OFFER.format(service="AmazonDynamoDB", version="20260911124422")
EC2_OFFER = _OFFER.format(service="AmazonEC2", version="20260925174521")
ECS_OFFER = _OFFER.format(service="AmazonECS", version="20260911124425")
S3_OFFER = _OFFER.format(service="AmazonS3", version="20260928230416")
VPC_OFFER = _OFFER.format(service="AmazonVPC", version="20260917190528")


@dataclass(frozen=True)
class Price:
    key: str
    what: str
    usd: float | None
    """USD per `unit` in eu-west-1; None when no eu-west-1 price was found (then nothing is priced with it)."""
    unit: str
    source: str
    looked_up: str = LOOKED_UP
    note: str = ""


PRICES: tuple[Price, ...] = (
    Price("nat_hour", "NAT gateway", 0.048, "NAT gateway-hour",
          EC2_OFFER, note="usage type EU-NatGateway-Hours"),
    Price("nat_gb", "NAT gateway data processed", 0.048, "GB",
          EC2_OFFER, note="usage type EU-NatGateway-Bytes"),
    Price("public_ipv4_hour", "Public IPv4 address in use", 0.005, "address-hour",
          VPC_OFFER, note="EU-PublicIPv4:InUseAddress"),
    Price("alb_hour", "Application Load Balancer", 0.0252, "ALB-hour",
          "https://aws.amazon.com/elasticloadbalancing/pricing/",
          note="EU-LoadBalancerUsage; the page renders regional rates in the browser: the rate is a July 2026 "
          "eu-west-1 bill's ($15.00 for 595 h)"),
    Price("alb_lcu_hour", "Application Load Balancer capacity unit", 0.008, "LCU-hour",
          ELB_OFFER, note="EU-LCUUsage"),
    Price("fargate_arm_vcpu_hour", "Fargate vCPU, Linux/ARM64", 0.03238, "vCPU-hour",
          _OFFER.format(service="AmazonECS", version="current"),
          note="EU-Fargate-ARM-vCPU-Hours:perCPU, SKU KXC9CEUQGJQPNZPY"),
    Price("fargate_arm_gb_hour", "Fargate memory, Linux/ARM64", 0.00356, "GB-hour",
          _OFFER.format(service="AmazonECS", version="current"),
          note="EU-Fargate-ARM-GB-Hours, SKU MGJ5EB5GSHR8QZDF"),
    Price("fargate_x86_vcpu_hour", "Fargate vCPU, Linux/x86", 0.04048, "vCPU-hour",
          ECS_OFFER, note="EU-Fargate-vCPU-Hours:perCPU"),
    Price("fargate_x86_gb_hour", "Fargate memory, Linux/x86", 0.004445, "GB-hour",
          ECS_OFFER, note="EU-Fargate-GB-Hours"),
    Price("kms_key_month", "KMS key", 1.00, "key-month", "https://aws.amazon.com/kms/pricing/",
          note="every region; each automatic rotation adds $1 a month for the first two rotations"),
    Price("alarm_month", "CloudWatch alarm, standard resolution", 0.10, "alarm metric-month",
          CLOUDWATCH_OFFER, note="EU-CW:AlarmMonitorUsage"),
    Price("metric_month", "CloudWatch custom metric (first 10,000)", 0.30, "metric-month",
          CLOUDWATCH_OFFER, note="EU-CW:MetricMonitorUsage"),
    Price("dashboard_month", "CloudWatch dashboard, beyond 3 free", 3.00, "dashboard-month",
          "https://aws.amazon.com/cloudwatch/pricing/", note="every region"),
    Price("logs_ingest_gb", "CloudWatch Logs ingestion, Standard class", 0.57, "GB",
          CLOUDWATCH_OFFER, note="EU-DataProcessing-Bytes"),
    Price("logs_storage_gb_month", "CloudWatch Logs storage", 0.03, "GB-month",
          CLOUDWATCH_OFFER, note="EU-TimedStorage-ByteHrs"),
    Price("logs_insights_gb", "CloudWatch Logs Insights, data scanned", 0.005, "GB",
          "https://aws.amazon.com/cloudwatch/pricing/",
          note="the us-east-1 rate, as no eu-west-1 rate was found; only the benchmark's comparison with AWS's "
          "guidance uses it"),
    Price("secret_month", "Secrets Manager secret", 0.40, "secret-month",
          SECRETS_MANAGER_OFFER, note="EU-AWSSecretsManager-Secrets"),
    Price("dynamodb_wru", "DynamoDB on-demand write request unit", 0.705e-6, "WRU",
          DYNAMODB_OFFER, note="EU-WriteRequestUnits"),
    Price("dynamodb_rru", "DynamoDB on-demand read request unit", 0.1415e-6, "RRU",
          DYNAMODB_OFFER, note="EU-ReadRequestUnits"),
    Price("dynamodb_storage_gb_month", "DynamoDB storage", 0.283, "GB-month",
          DYNAMODB_OFFER,
          note="EU-TimedStorage-ByteHrs, beyond the first 25 GB (not deducted here)"),
    Price("dynamodb_pitr_gb_month", "DynamoDB point-in-time recovery storage", 0.22, "GB-month",
          DYNAMODB_OFFER, note="EU-TimedPITRStorage-ByteHrs"),
    Price("lambda_request", "Lambda request", 0.20e-6, "request",
          LAMBDA_OFFER, note="EU-Request"),
    Price("lambda_arm_gb_second", "Lambda compute, ARM64 (first 7.5 billion GB-s)", 0.0000133334, "GB-second",
          _OFFER.format(service="AWSLambda", version="current"),
          note="EU-Lambda-GB-Second-ARM, tier 1"),
    Price("lambda_x86_gb_second", "Lambda compute, x86 (first 6 billion GB-s)", 0.0000166667, "GB-second",
          LAMBDA_OFFER, note="EU-Lambda-GB-Second, tier 1"),
    Price("s3_put", "S3 PUT, COPY, POST or LIST request", 0.005e-3, "request",
          S3_OFFER, note="EU-Requests-Tier1"),
    Price("s3_storage_gb_month", "S3 Standard storage (first 50 TB)", 0.023, "GB-month",
          S3_OFFER, note="EU-TimedStorage-ByteHrs"),
    Price("firehose_ingest_gb", "Data Firehose ingestion", None, "GB",
          "https://aws.amazon.com/firehose/pricing/",
          note="not found: the page renders regional rates in the browser, and no eu-west-1 rate was in the "
          "price-list extracts searched"),
    Price("firehose_conversion_gb", "Data Firehose format conversion (Parquet)", None, "GB",
          "https://aws.amazon.com/firehose/pricing/", note="not found, as above"),
    Price("firehose_partitioning_gb", "Data Firehose dynamic partitioning", None, "GB",
          "https://aws.amazon.com/firehose/pricing/", note="not found, as above (also per S3 object delivered)"),
)  # fmt: skip
PRICE = {price.key: price for price in PRICES}


def usd(key: str) -> float:
    """The price of `key`, for a calculation that cannot go without it."""
    price = PRICE[key].usd
    if price is None:
        raise ValueError(f"offline/prices.py has no {REGION} price for {key}")
    return price


@dataclass(frozen=True)
class Function:
    memory_mb: float
    arm: bool


def gb_seconds(seconds_on_one_core: float, function: Function, cpu_bound: bool = True) -> float:
    """GB-seconds of work measured on one core: below 1,769 MB a function has a share of a vCPU and runs longer."""
    share = min(1.0, function.memory_mb / LAMBDA_MB_PER_VCPU) if cpu_bound else 1.0
    return seconds_on_one_core / share * function.memory_mb / 1024
