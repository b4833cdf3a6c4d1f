"""The DynamoDB tables of the stack: on demand, encrypted, keyed `pk`/`sk` (strings), items expiring by TTL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from lambda_src.common.rollups import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE


def keyed_table(
    name: str,
    *,
    point_in_time_recovery: bool,
    deletion_protection: bool,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    index_keys: Sequence[str] = (),
    global_secondary_indexes: Sequence[aws.dynamodb.TableGlobalSecondaryIndexArgs] = (),
) -> aws.dynamodb.Table:
    """A table named `name`; `index_keys` are the string attributes its global secondary indexes are keyed by."""
    return aws.dynamodb.Table(
        name,
        name=name,
        billing_mode="PAY_PER_REQUEST",
        hash_key=PARTITION_KEY,
        range_key=SORT_KEY,
        attributes=[
            aws.dynamodb.TableAttributeArgs(name=key, type="S") for key in (PARTITION_KEY, SORT_KEY, *index_keys)
        ],
        global_secondary_indexes=list(global_secondary_indexes) or None,
        ttl={"attribute_name": TTL_ATTRIBUTE, "enabled": True},
        server_side_encryption={"enabled": True},
        point_in_time_recovery={"enabled": point_in_time_recovery},
        deletion_protection_enabled=deletion_protection,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
