"""The awsx children the offline preview models (offline/awsx.py), against awsx's own source and tests.

Expected kinds and numbers follow pulumi/pulumi-awsx `awsx/ec2/vpc.ts` (3.11.0): per zone and subnet spec a
subnet, a route table and an association; a default route per public subnet (internet gateway) and per private
subnet unless the NAT strategy is None; an Elastic IP and a NAT gateway per zone (OnePerAz) or in the first zone
(Single); one VPC and one internet gateway. CIDRs are the cases of awsx's `subnetDistributorLegacy.test.ts` and
`knownWorkingSubnets.ts`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from offline.awsx import ModelError, legacy_layout, vpc_model
from offline.engine import OfflineError, Program, StackConfigFile, run_program
from offline.preview import MODELLED_MARK, Counts, PreviewResult, main, plan_document

ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
SPECS = [{"type": "Public", "cidrMask": 24.0}, {"type": "Private", "cidrMask": 20.0}]  # as components/collector.py


def kinds(model_inputs: dict[str, Any]) -> Counter[str]:
    model = vpc_model("net", model_inputs, ZONES)
    return Counter(child.type.split(":")[-1] for child in model.children)


def expected(zones: int, strategy: str, public: int = 1, private: int = 1, isolated: int = 0) -> Counter[str]:
    """The documented behaviour, written out: what awsx creates for these subnet specs, zones and NAT strategy."""
    subnets = zones * (public + private + isolated)
    nat = {"OnePerAz": zones, "Single": 1, "None": 0}[strategy] if public else 0
    private_routes = zones * private if strategy != "None" else 0
    return Counter(
        {
            "Vpc": 1,
            "InternetGateway": 1,
            "Subnet": subnets,
            "RouteTable": subnets,
            "RouteTableAssociation": subnets,
            "Route": zones * public + private_routes,
            "Eip": nat,
            "NatGateway": nat,
        }
    )


@pytest.mark.parametrize("zones", [1, 2, 3])
@pytest.mark.parametrize("strategy", ["OnePerAz", "Single", "None"])
def test_children_per_nat_strategy_and_zone_count(strategy: str, zones: int) -> None:
    got = kinds(
        {"numberOfAvailabilityZones": float(zones), "natGateways": {"strategy": strategy}, "subnetSpecs": SPECS}
    )
    assert +got == +expected(zones, strategy)


@pytest.mark.parametrize(("strategy", "zones", "total"), [("OnePerAz", 3, 32), ("Single", 2, 20), ("None", 3, 23)])
def test_totals_of_the_stacks_layouts(strategy: str, zones: int, total: int) -> None:
    """prod (3 zones, one NAT gateway each) adds 32 resources, dev (2 zones, one NAT gateway) 20."""
    model = vpc_model(
        "net", {"numberOfAvailabilityZones": zones, "natGateways": {"strategy": strategy}, "subnetSpecs": SPECS}, ZONES
    )
    assert len(model.children) == total


def test_defaults_are_three_zones_one_nat_gateway_each_and_a_public_and_private_subnet() -> None:
    assert +kinds({}) == +expected(3, "OnePerAz")


def test_isolated_subnets_get_no_route_and_given_elastic_ips_are_used() -> None:
    specs = [*SPECS, {"type": "Isolated", "cidrMask": 24}]
    got = kinds({"numberOfAvailabilityZones": 2, "natGateways": {"strategy": "Single"}, "subnetSpecs": specs})
    assert +got == +expected(2, "Single", isolated=1)
    given = vpc_model(
        "net",
        {
            "numberOfAvailabilityZones": 2,
            "subnetSpecs": SPECS,
            "natGateways": {"strategy": "OnePerAz", "elasticIpAllocationIds": ["eipalloc-1", "eipalloc-2"]},
        },
        ZONES,
    )
    nats = [c for c in given.children if c.type == "aws:ec2/natGateway:NatGateway"]
    assert [n.inputs["allocationId"] for n in nats] == ["eipalloc-1", "eipalloc-2"]
    assert not [c for c in given.children if c.type == "aws:ec2/eip:Eip"]


def test_parents_names_and_routes_follow_vpc_ts() -> None:
    model = vpc_model(
        "net", {"numberOfAvailabilityZones": 2, "natGateways": {"strategy": "OnePerAz"}, "subnetSpecs": SPECS}, ZONES
    )
    by_index = dict(enumerate(model.children))

    def parent_type(index: int) -> str:
        parent = by_index[index].parent
        return "component" if parent is None else by_index[parent].type.split(":")[-1]

    parents = {(c.type.split(":")[-1], parent_type(i)) for i, c in by_index.items()}
    assert parents == {
        ("Vpc", "component"),
        ("InternetGateway", "Vpc"),
        ("Subnet", "Vpc"),
        ("RouteTable", "Subnet"),
        ("RouteTableAssociation", "RouteTable"),
        ("Route", "RouteTable"),
        ("Eip", "Subnet"),
        ("NatGateway", "Subnet"),
    }
    names = [c.name for c in model.children if c.type == "aws:ec2/subnet:Subnet"]
    assert names == ["net-public-1", "net-private-1", "net-public-2", "net-private-2"]  # public first in each zone
    nat_ids = [c.id for c in model.children if c.type == "aws:ec2/natGateway:NatGateway"]
    private_routes = [
        c.inputs for c in model.children if c.type == "aws:ec2/route:Route" and "natGatewayId" in c.inputs
    ]
    assert [r["natGatewayId"] for r in private_routes] == nat_ids  # each zone's private subnet through its own
    assert model.outputs["privateSubnetIds"] == [
        c.id for c in model.children if c.type == "aws:ec2/subnet:Subnet" and "private" in c.name
    ]


@pytest.mark.parametrize(
    ("vpc", "specs", "cidrs"),
    [
        ("10.0.0.0/16", [(None, "Public"), (None, "Private"), (None, "Isolated")],
         ["10.0.0.0/19", "10.0.32.0/20", "10.0.48.0/24"]),
        ("10.0.0.0/18", [(22, "Isolated"), (21, "Public")], ["10.0.0.0/21", "10.0.8.0/22"]),
        ("10.0.0.0/16", [(27, "Isolated"), (27, "Public"), (17, "Isolated")],
         ["10.0.0.0/27", "10.0.0.32/27", "10.0.128.32/17"]),
        ("10.0.0.0/17", [(25, "Public"), (27, "Isolated")], ["10.0.0.0/25", "10.0.0.128/27"]),
        ("10.0.0.0/16", [(22, "Isolated"), (21, "Private"), (18, "Private")],
         ["10.0.0.0/21", "10.0.64.0/18", "10.0.128.0/22"]),
        ("10.0.0.0/16", [(27, "Isolated"), (24, "Public")], ["10.0.0.0/24", "10.0.1.0/27"]),
    ],
)  # fmt: skip
def test_legacy_cidrs_match_awsx_known_working_subnets(
    vpc: str, specs: list[tuple[int | None, str]], cidrs: list[str]
) -> None:
    inputs = [{"type": kind} if mask is None else {"type": kind, "cidrMask": mask} for mask, kind in specs]
    assert [s.cidr_block for s in legacy_layout("vpcName", vpc, ["us-east-1a"], inputs)] == cidrs


def test_legacy_default_layout_over_three_zones() -> None:
    layout = legacy_layout("vpcname", "10.0.0.0/16", ["us-east-1a", "us-east-1b", "us-east-1c"], None)
    assert [(s.name, s.cidr_block) for s in layout if s.type == "Private"] == [
        ("vpcname-private-1", "10.0.0.0/19"),
        ("vpcname-private-2", "10.0.64.0/19"),
        ("vpcname-private-3", "10.0.128.0/19"),
    ]
    assert [s.cidr_block for s in layout if s.type == "Public"] == ["10.0.32.0/20", "10.0.96.0/20", "10.0.160.0/20"]
    assert legacy_layout("vpcName", "10.0.0.0/16", ["us-east-1a"], [{"type": "Public"}], 21)[0].cidr_block == (
        "10.0.0.0/21"
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"natGateways": {"strategy": "Single"}, "subnetSpecs": [{"type": "Private"}]}, "public subnets must be"),
        ({"natGateways": {"strategy": "Sometimes"}}, "Unknown NAT Gateway strategy 'Sometimes'"),
        ({"numberOfAvailabilityZones": 4}, "does not have at least 4 Availability Zones"),
        ({"numberOfAvailabilityZones": 2, "availabilityZoneNames": ["a", "b"]}, "Only one of"),
        ({"natGateways": {"strategy": "Single", "elasticIpAllocationIds": ["a", "b"]}}, "takes 1"),
        ({"vpcEndpointStrategy": "Auto"}, "not modelled"),
    ],
)
def test_inputs_awsx_refuses_or_the_model_does_not_cover(inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        vpc_model("net", inputs, ZONES)


@pytest.mark.parametrize(("fixture", "zones", "nat"), [("dev_preview", 2, 1), ("prod_preview", 3, 3)])
def test_stack_previews_show_count_and_write_the_modelled_children(
    fixture: str, zones: int, nat: int, request: pytest.FixtureRequest
) -> None:
    result: PreviewResult = request.getfixturevalue(fixture)
    (vpc,) = [r for r in result.run.registrations if r.type == "awsx:ec2:Vpc"]
    modelled = result.run.modelled
    assert {r.modelled_by for r in modelled} == {"awsx:ec2:Vpc"}
    assert Counter(r.type for r in modelled)["aws:ec2/natGateway:NatGateway"] == nat
    assert Counter(r.type for r in modelled)["aws:ec2/subnet:Subnet"] == 2 * zones
    (inner,) = [r for r in modelled if r.parent == vpc.urn]
    assert inner.urn.endswith(f"Collector$awsx:ec2:Vpc$aws:ec2/vpc:Vpc::{vpc.name}")  # the engine's type chain
    # The program's subnets are the modelled ones: the service runs in the modelled private subnets.
    private = [r.resource_id for r in modelled if r.type == "aws:ec2/subnet:Subnet" and "-private-" in r.name]
    assert vpc.outputs()["privateSubnetIds"] == private
    plan = json.loads(result.artifacts[0].read_text())
    assert plan == json.loads(json.dumps(plan_document(result.run, result.violations), default=str))
    assert sum(1 for r in plan["resources"] if r["modelled"]) == len(modelled)
    urns = [r["urn"] for r in plan["resources"]]
    assert urns.index(vpc.urn) + 1 == urns.index(inner.urn)  # written right after their component
    assert plan["unmodelled"] == []
    counts = Counts.of_plan(plan)
    assert counts == Counts.of(result.run.resources())
    assert counts.resources == len(result.run.registrations) + len(modelled)


def test_the_report_marks_modelled_children_and_counts_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    nat_lines = [line for line in out.splitlines() if "aws:ec2/natGateway:NatGateway" in line]
    assert len(nat_lines) == 3 and all(line.endswith(MODELLED_MARK) for line in nat_lines)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert f"+ {Counts.of_plan(plan).summary()}" in out
    assert "32 of them modelled children of awsx components" in out


def test_quiet_prints_one_line_per_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--stack", "dev", "--out", str(tmp_path), "--quiet"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("dev: ") and "20 of them modelled" in line and str(tmp_path) in line


def write_program(directory: Path, body: str) -> Program:
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text("name: awsx-probe\nruntime: python\n")
    (directory / "Pulumi.test.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    (directory / "__main__.py").write_text("import pulumi_awsx as awsx\n\n" + body)
    return Program.load(directory)


def test_inputs_awsx_refuses_fail_the_preview_with_the_component_named(tmp_path: Path) -> None:
    program = write_program(
        tmp_path / "bad",
        'awsx.ec2.Vpc("net", number_of_availability_zones=2, nat_gateways={"strategy": "Sometimes"})\n',
    )
    with pytest.raises(OfflineError, match=r"awsx:ec2:Vpc::net: Unknown NAT Gateway strategy 'Sometimes'"):
        run_program(program, StackConfigFile.load(tmp_path / "bad" / "Pulumi.test.yaml", program))


def test_a_remote_component_without_a_model_is_reported_not_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "default-vpc"
    write_program(directory, 'awsx.ec2.DefaultVpc("default")\n')
    out = tmp_path / "out"
    assert main(["--program", str(directory), "--config", str(directory / "Pulumi.test.yaml"), "--out", str(out)]) == 0
    (urn,) = json.loads((out / "plan.json").read_text())["unmodelled"]
    assert urn.endswith("awsx:ec2:DefaultVpc::default")
    assert f"warning: {urn} is a remote component whose children this preview neither sees nor models" in (
        capsys.readouterr().out
    )
