"""The children awsx components register, modelled from awsx's own source, for the offline preview.

awsx components are remote (multi-language) components: their children are registered by the awsx provider
process, which the mock runtime does not run, so under mocks a component registers once and has no children.
`pulumi preview` shows them, and the bill has them (the NAT gateways above all). This module derives them from
the component's inputs the way awsx does, so the preview shows, counts and prices them.

Source: pulumi/pulumi-awsx, `awsx/ec2/vpc.ts` (`Vpc.initialize`, `shouldCreateNatGateway`, `compareSubnetSpecs`),
`awsx/ec2/subnetDistributorLegacy.ts` (`getSubnetSpecsLegacy`: subnet CIDRs of the default, Legacy strategy) and
`awsx/ec2/subnetNaming.ts` (`subnetName`), as of pulumi-awsx 3.11.0, the version this project pins. Per
availability zone and subnet spec (public first, then private, then isolated) awsx creates:

- a subnet, parented to the VPC, and a route table parented to the subnet, with an association under it;
- in a public subnet, when the NAT strategy asks for one there, an Elastic IP (unless `elasticIpAllocationIds`
  are given) and a NAT gateway, both parented to the subnet (`OnePerAz`: one per zone; `Single`: in the first
  zone only; `None`: none);
- a default route (0.0.0.0/0): through the internet gateway for a public subnet, through the zone's NAT gateway
  (the single one with `Single`) for a private subnet unless the strategy is `None`; none for an isolated one.

Besides: the `aws:ec2/vpc:Vpc` itself (parented to the component), one internet gateway (always, "AWS does not
charge for it") and one VPC endpoint per `vpcEndpointSpecs` entry, both parented to the VPC.

Modelled, not run: names, parents, kinds and numbers follow the source; inputs carry what a reviewer and the
cost model need (CIDRs, zones, routes, tags) with ids from the mocks' scheme. CIDRs are modelled for the Legacy
subnet strategy (awsx's default, which this program uses); other strategies get the same resources without a
`cidrBlock`. The `Auto` VPC endpoint strategy (which may add security groups) is not modelled and is refused.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SOURCE = "pulumi/pulumi-awsx awsx/ec2/vpc.ts (pulumi-awsx 3.11.0)"
VPC_TOKEN = "awsx:ec2:Vpc"
REMOTE_PACKAGES = ("awsx",)
"""Packages whose components are remote: their children never reach the mock runtime."""

SUBNET_TYPES = ("Public", "Private", "Isolated")
NAT_STRATEGIES = ("OnePerAz", "Single", "None")
# The aws.ec2.Vpc inputs awsx passes through from its own arguments (`new aws.ec2.Vpc(name, {...args, ...})`).
_VPC_INPUTS = (
    "assignGeneratedIpv6CidrBlock",
    "enableDnsHostnames",
    "enableDnsSupport",
    "enableNetworkAddressUsageMetrics",
    "instanceTenancy",
    "ipv4IpamPoolId",
    "ipv4NetmaskLength",
    "ipv6CidrBlock",
    "ipv6CidrBlockNetworkBorderGroup",
    "ipv6IpamPoolId",
    "ipv6NetmaskLength",
    "region",
)


class ModelError(ValueError):
    """The component's inputs are ones awsx itself refuses, or ones this model does not cover."""


@dataclass(frozen=True)
class ModelledChild:
    type: str
    name: str
    parent: int | None
    """Index of the parent among the model's children; None for the component itself."""
    inputs: dict[str, Any]
    id: str


@dataclass(frozen=True)
class ComponentModel:
    component: str
    children: list[ModelledChild] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def add(self, type_: str, name: str, parent: int | None, inputs: dict[str, Any], prefix: str) -> int:
        self.children.append(ModelledChild(type_, name, parent, inputs, physical_id(prefix, type_, name)))
        return len(self.children) - 1

    def id_of(self, index: int) -> str:
        return self.children[index].id


def physical_id(prefix: str, type_: str, name: str) -> str:
    """A deterministic AWS-like id, as the mocks make them (`subnet-<17 hex>`)."""
    return f"{prefix}-{hashlib.sha256(f'{type_}::{name}'.encode()).hexdigest()[:17]}"


# CIDR arithmetic as awsx's legacy allocator does it (ip-address on the address as written, not masked) ----------


def _parse(cidr: str) -> tuple[int, int]:
    address, _, mask = cidr.partition("/")
    octets = [int(part) for part in address.split(".")]
    if len(octets) != 4 or not all(0 <= o <= 255 for o in octets) or not mask.isdigit() or int(mask) > 32:
        raise ModelError(f"not an IPv4 CIDR block: {cidr!r}")
    return sum(o << (8 * (3 - i)) for i, o in enumerate(octets)), int(mask)


def _text(address: int, mask: int) -> str:
    return ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0)) + f"/{mask}"


def _bounds(cidr: str) -> tuple[int, int]:
    address, mask = _parse(cidr)
    size = 1 << (32 - mask)
    start = address & ~(size - 1) & 0xFFFFFFFF
    return start, start + size - 1


def cidr_subnet(cidr: str, new_bits: int, net_num: int) -> str:
    """`cidrSubnetV4`: the net_num-th block of mask + new_bits bits, counted from the address as written."""
    address, mask = _parse(cidr)
    new_mask = mask + new_bits
    if new_mask > 32:
        raise ModelError(f"requested {new_bits} new bits, but only {32 - mask} are available in {cidr}")
    return _text(address + (1 << (32 - new_mask)) * net_num, new_mask)


def _overlapping(first: str, second: str) -> bool:
    first_start, first_end = _bounds(first)
    second_start, second_end = _bounds(second)
    return first_start <= second_end and second_start <= first_end


def _next_block(previous: str, mask: int) -> str:
    _, last = _bounds(previous)
    _, end = _bounds(_text(last, mask))
    return _text(end + 1, mask)


def _next_pow2(n: int) -> int:
    return 1 if n <= 0 else 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class SubnetSpec:
    type: str
    zone: str
    zone_number: int
    name: str
    cidr_block: str | None
    tags: dict[str, Any]


def legacy_layout(
    vpc_name: str,
    vpc_cidr: str,
    zones: Sequence[str],
    specs: Sequence[Mapping[str, Any]] | None,
    zone_cidr_mask: int | None = None,
) -> list[SubnetSpec]:
    """`getSubnetSpecsLegacy`: each zone gets an equal share of the VPC; in it, private subnets first (/19 unless
    `cidrMask`), then public (/20), then isolated (/24), each moved to the next free block when it would overlap."""
    _, vpc_mask = _parse(vpc_cidr)
    zone_bits = zone_cidr_mask - vpc_mask if zone_cidr_mask is not None else int(math.log2(_next_pow2(len(zones))))
    bases = [cidr_subnet(vpc_cidr, zone_bits, index) for index in range(len(zones))]
    out: list[SubnetSpec] = []
    if specs is None:
        for number, (zone, base) in enumerate(zip(zones, bases, strict=True), start=1):
            private = cidr_subnet(base, 1, 0)
            public = cidr_subnet(cidr_subnet(private, 0, 1), 1, 0)
            out.append(SubnetSpec("Private", zone, number, f"{vpc_name}-private-{number}", private, {}))
            out.append(SubnetSpec("Public", zone, number, f"{vpc_name}-public-{number}", public, {}))
        return out
    base_mask = _parse(bases[0])[1]
    bits_per_subnet = 0 if len(specs) == 1 else 1
    of_kind = {kind: [s for s in specs if str(s.get("type", "")).lower() == kind] for kind in _DEFAULT_MASKS}
    for number, (zone, base) in enumerate(zip(zones, bases, strict=True), start=1):
        current = _text(_bounds(base)[0] - 1, 32)  # one address before the zone's block
        placed: dict[str, list[str]] = {kind: [] for kind in _DEFAULT_MASKS}
        for kind, default_mask in _DEFAULT_MASKS.items():
            # Private subnets start at the zone's block; public ones after the last private subnet; isolated
            # ones after the last public (or else private) subnet.
            before = [] if kind == "private" else placed["private"] if kind == "public" else placed["public"]
            before = before or ([] if kind != "isolated" else placed["private"])
            base_cidr = before[-1] if before else base
            split_base = cidr_subnet(base_cidr, 0, 1) if before else base
            for index, spec in enumerate(of_kind[kind]):
                mask = _mask(spec.get("cidrMask"), max(base_mask + bits_per_subnet, default_mask))
                candidate = cidr_subnet(split_base, mask - _parse(base_cidr)[1], index)
                if _overlapping(current, candidate):
                    candidate = _next_block(current, mask)
                name = f"{vpc_name}-{spec.get('name') or kind}-{number}"
                out.append(SubnetSpec(kind.capitalize(), zone, number, name, candidate, dict(spec.get("tags") or {})))
                placed[kind].append(candidate)
                current = candidate
    return out


_DEFAULT_MASKS = {"private": 19, "public": 20, "isolated": 24}


def _mask(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _zones(inputs: Mapping[str, Any], available: Sequence[str]) -> list[str]:
    named = inputs.get("availabilityZoneNames")
    count = inputs.get("numberOfAvailabilityZones")
    if named and count:
        raise ModelError("Only one of [availabilityZoneNames] and [numberOfAvailabilityZones] can be specified")
    if named:
        return [str(zone) for zone in named]
    wanted = int(count) if count is not None else 3
    if len(available) < wanted:
        raise ModelError(
            f"The configured region for this provider does not have at least {wanted} Availability Zones "
            f"(the mocks answer {len(available)})"
        )
    return list(available[:wanted])


def _should_create_nat(strategy: str, made: int, zone_index: int) -> bool:
    """`shouldCreateNatGateway`."""
    lowered = strategy.lower()
    if lowered == "none":
        return False
    if lowered == "single":
        return made < 1
    if lowered == "oneperaz":
        return made < zone_index + 1
    raise ModelError(f'Unknown NatGatewayStrategy "{strategy}"')


def _check_nat_strategy(strategy: str, specs: Sequence[SubnetSpec]) -> None:
    """`validateNatGatewayStrategy`: a NAT gateway needs a public subnet to sit in and a subnet to serve."""
    if strategy.lower() in ("oneperaz", "single"):
        types = {spec.type.lower() for spec in specs}
        if "public" not in types or not types & {"private", "isolated"}:
            raise ModelError(
                "If NAT Gateway strategy is 'OnePerAz' or 'Single', public subnets must be declared to host the NAT "
                "Gateway resource, along with private or isolated subnets to route through it."
            )
    elif strategy.lower() != "none":
        raise ModelError(f"Unknown NAT Gateway strategy '{strategy}'")


def _check_eips(strategy: str, allocation_ids: Sequence[str], zones: Sequence[str]) -> None:
    """`validateEips`: as many given Elastic IPs as the strategy makes NAT gateways."""
    expected = {"none": 0, "single": 1, "oneperaz": len(zones)}.get(strategy.lower())
    if allocation_ids and expected is not None and len(allocation_ids) != expected:
        raise ModelError(
            f"NAT Gateway strategy {strategy!r} with {len(zones)} availability zones takes {expected} "
            f"elasticIpAllocationIds, got {len(allocation_ids)}"
        )


def vpc_model(name: str, inputs: Mapping[str, Any], available_zones: Sequence[str]) -> ComponentModel:
    """What `awsx.ec2.Vpc(name, **inputs)` registers (inputs as the engine sees them: camelCase)."""
    if inputs.get("vpcEndpointStrategy", "Legacy") != "Legacy":
        raise ModelError("vpcEndpointStrategy Auto is not modelled offline (it may add security groups)")
    zones = _zones(inputs, available_zones)
    nat = dict(inputs.get("natGateways") or {})
    strategy = str(nat.get("strategy") or "OnePerAz")
    allocation_ids = [str(i) for i in nat.get("elasticIpAllocationIds") or []]
    _check_eips(strategy, allocation_ids, zones)
    cidr = str(inputs.get("cidrBlock") or "10.0.0.0/16")
    raw_specs = inputs.get("subnetSpecs")
    specs_in = [dict(spec) for spec in raw_specs] if raw_specs is not None else None
    if specs_in is not None:
        unknown = sorted({str(s.get("type")) for s in specs_in} - {*SUBNET_TYPES, "Unused"})
        if unknown:
            raise ModelError(f"unknown subnet types {unknown}; awsx knows {', '.join(SUBNET_TYPES)} and Unused")
        specs_in = [s for s in specs_in if s.get("type") != "Unused"]
    strategy_of_subnets = str(inputs.get("subnetStrategy") or "Legacy")
    zone_mask = inputs.get("availabilityZoneCidrMask")
    specs = legacy_layout(name, cidr, zones, specs_in, int(zone_mask) if zone_mask is not None else None)
    if strategy_of_subnets != "Legacy":  # same subnets, CIDRs chosen by another allocator: not modelled
        specs = [SubnetSpec(s.type, s.zone, s.zone_number, s.name, None, s.tags) for s in specs]
    _check_nat_strategy(strategy, specs)

    tags = {"Name": name, **dict(inputs.get("tags") or {})}
    model = ComponentModel(VPC_TOKEN)
    vpc_inputs = {key: inputs[key] for key in _VPC_INPUTS if key in inputs}
    vpc = model.add("aws:ec2/vpc:Vpc", name, None, {**vpc_inputs, "cidrBlock": cidr, "tags": tags}, "vpc")
    vpc_id = model.id_of(vpc)
    gateway = model.add("aws:ec2/internetGateway:InternetGateway", name, vpc, {"vpcId": vpc_id, "tags": tags}, "igw")
    order = {"public": 0, "private": 1, "isolated": 2}
    nat_gateways: list[int] = []
    subnet_ids: dict[str, list[str]] = {"public": [], "private": [], "isolated": []}
    for zone_index, zone in enumerate(zones):
        for spec in sorted((s for s in specs if s.zone == zone), key=lambda s: order[s.type.lower()]):
            kind = spec.type.lower()
            subnet_inputs: dict[str, Any] = {
                "vpcId": vpc_id,
                "availabilityZone": zone,
                "mapPublicIpOnLaunch": kind == "public",
                "tags": {**tags, **spec.tags, "Name": spec.name, "SubnetType": spec.type},
            }
            if spec.cidr_block is not None:
                subnet_inputs["cidrBlock"] = spec.cidr_block
            subnet = model.add("aws:ec2/subnet:Subnet", spec.name, vpc, subnet_inputs, "subnet")
            subnet_ids[kind].append(model.id_of(subnet))
            table = model.add(
                "aws:ec2/routeTable:RouteTable",
                spec.name,
                subnet,
                {"vpcId": vpc_id, "tags": {**tags, "Name": spec.name, "SubnetType": spec.type}},
                "rtb",
            )
            model.add(
                "aws:ec2/routeTableAssociation:RouteTableAssociation",
                spec.name,
                table,
                {"routeTableId": model.id_of(table), "subnetId": model.id_of(subnet)},
                "rtbassoc",
            )
            if kind == "public" and _should_create_nat(strategy, len(nat_gateways), zone_index):
                nat_name = f"{name}-{zone_index + 1}"
                nat_tags = {**dict(inputs.get("tags") or {}), "Name": nat_name}
                if allocation_ids:
                    allocation = allocation_ids[zone_index]
                else:
                    eip = model.add("aws:ec2/eip:Eip", nat_name, subnet, {"tags": nat_tags}, "eipalloc")
                    allocation = model.id_of(eip)
                nat_gateways.append(
                    model.add(
                        "aws:ec2/natGateway:NatGateway",
                        nat_name,
                        subnet,
                        {"subnetId": model.id_of(subnet), "allocationId": allocation, "tags": nat_tags},
                        "nat",
                    )
                )
            route: dict[str, Any] | None = None
            if kind == "public":
                route = {"gatewayId": model.id_of(gateway)}
            elif kind == "private" and strategy.lower() != "none":
                serving = nat_gateways[0] if strategy.lower() == "single" else nat_gateways[zone_index]
                route = {"natGatewayId": model.id_of(serving)}
            if route is not None:
                model.add(
                    "aws:ec2/route:Route",
                    spec.name,
                    table,
                    {"routeTableId": model.id_of(table), **route, "destinationCidrBlock": "0.0.0.0/0"},
                    "r",
                )
    for endpoint in inputs.get("vpcEndpointSpecs") or []:
        service = str(endpoint.get("serviceName"))
        model.add("aws:ec2/vpcEndpoint:VpcEndpoint", service, vpc, {**dict(endpoint), "vpcId": vpc_id}, "vpce")
    model.outputs.update(
        {
            "vpcId": vpc_id,
            "publicSubnetIds": subnet_ids["public"],
            "privateSubnetIds": subnet_ids["private"],
            "isolatedSubnetIds": subnet_ids["isolated"],
            "natGatewayIds": [model.id_of(index) for index in nat_gateways],
            "internetGatewayId": model.id_of(gateway),
        }
    )
    return model


MODELS: dict[str, Callable[[str, Mapping[str, Any], Sequence[str]], ComponentModel]] = {VPC_TOKEN: vpc_model}
"""Remote component types whose children are modelled, by token."""


def is_remote_component(token: str) -> bool:
    return token.split(":", 1)[0] in REMOTE_PACKAGES
