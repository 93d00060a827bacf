"""CreatePipelineRequest validation and defaults, as pps/server/api_server.go does them.

validatePipelineRequest -> initializePipelineInfo (details + setPipelineDefaults)
-> validatePipeline.  Plain Go errors, so gRPC code UNKNOWN.
"""
from __future__ import annotations

import json
import posixpath

from python_pachyderm.proto.v2.pps import pps_pb2

from .errors import unknown
from .names import validate_pipeline_name

DEFAULT_USER_IMAGE = "ubuntu:20.04"
DEFAULT_DATUM_TRIES = 3
REPROCESS_UNTIL_SUCCESS = "until_success"
REPROCESS_EVERY_JOB = "every_job"
SERVICE_TYPES = ("ClusterIP", "LoadBalancer", "NodePort")


def validate_request(request: pps_pb2.CreatePipelineRequest, project: str) -> None:
    """validatePipelineRequest."""
    validate_pipeline_name(project, request.pipeline.name)
    if request.HasField("tf_job"):
        raise unknown("embedding TFJobs in pipelines is not supported yet")
    if request.s3_out and (request.HasField("service") or request.HasField("spout")):
        raise unknown("s3 output is not supported in spouts or services")
    if not request.HasField("transform"):
        raise unknown("pipeline must specify a transform")
    if request.reprocess_spec not in ("", REPROCESS_UNTIL_SUCCESS, REPROCESS_EVERY_JOB):
        raise unknown(
            "invalid pipeline spec: ReprocessSpec must be one of "
            f"'{REPROCESS_UNTIL_SUCCESS}' or '{REPROCESS_EVERY_JOB}'"
        )
    if request.HasField("spout") and request.autoscaling:
        raise unknown("autoscaling can't be used with spouts (spouts aren't triggered externally)")


def details_from_request(request: pps_pb2.CreatePipelineRequest) -> pps_pb2.PipelineInfo.Details:
    """PipelineInfo.Details mirrors the request field by field."""
    details = pps_pb2.PipelineInfo.Details()
    request_fields = request.DESCRIPTOR.fields_by_name
    for field in details.DESCRIPTOR.fields:
        source = request_fields.get(field.name)
        if source is None or source.type != field.type:
            continue
        _copy_field(request, details, field.name, field)
    return details


def _copy_field(source, target, name, field) -> None:
    if field.label == field.LABEL_REPEATED:
        getattr(target, name).extend(getattr(source, name))
    elif field.message_type is not None:
        if source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))
    else:
        setattr(target, name, getattr(source, name))


def apply_defaults(details: pps_pb2.PipelineInfo.Details, project: str, pipeline: str) -> None:
    """setPipelineDefaults, plus the input project CreatePipelineInTransaction fills in."""
    if details.transform.image == "":
        details.transform.image = DEFAULT_USER_IMAGE
    if details.output_branch == "":
        details.output_branch = "master"
    if details.datum_tries == 0:
        details.datum_tries = DEFAULT_DATUM_TRIES
    if details.HasField("service") and details.service.type == "":
        details.service.type = "NodePort"
    spout = details.spout
    if details.HasField("spout") and spout.HasField("service") and spout.service.type == "":
        spout.service.type = "NodePort"
    if details.reprocess_spec == "":
        details.reprocess_spec = REPROCESS_UNTIL_SUCCESS
    if details.HasField("input"):
        set_input_defaults(details.input, project, pipeline)


def set_input_defaults(root: pps_pb2.Input, project: str, pipeline: str) -> None:
    """setInputDefaults (api_server.go): pps.SortInput first - so unnamed inputs sort by "" -
    then, in VisitInput order, branch (a trigger input gets "<pipeline>-trigger-<n>", counted
    per repo from 1, and trigger.branch "master"), name, repo_type and CleanPath(glob); cron
    start ("now") and repo.  The input project is filled in by CreatePipelineInTransaction."""
    sort_input(root)
    triggers: dict[str, int] = {}
    for node in walk_input(root):
        _input_defaults(node, project, pipeline, triggers)


def input_name(node: pps_pb2.Input) -> str:
    """pps.InputName (src/pps/util.go): a pfs input's name, a group's first child's; cron: ""."""
    if node.HasField("pfs"):
        return node.pfs.name
    for children in (node.cross, node.join, node.group, node.union):
        if children:
            return input_name(children[0])
    return ""


def sort_input(root: pps_pb2.Input) -> None:
    """pps.SortInput: post-order, each cross/join/group/union's children stably by InputName."""
    for node in walk_input(root):
        for field in ("cross", "join", "group", "union"):
            children = getattr(node, field)
            if len(children) > 1:
                ordered = sorted((_copy_input(c) for c in children), key=input_name)
                del children[:]
                children.extend(ordered)


def _copy_input(node: pps_pb2.Input) -> pps_pb2.Input:
    copy = pps_pb2.Input()
    copy.CopyFrom(node)
    return copy


def _input_defaults(node: pps_pb2.Input, project: str, pipeline: str, triggers: dict) -> None:
    if node.HasField("pfs"):
        pfs = node.pfs
        if pfs.branch == "":
            if pfs.HasField("trigger"):
                triggers[pfs.repo] = triggers.get(pfs.repo, 0) + 1
                pfs.branch = f"{pipeline}-trigger-{triggers[pfs.repo]}"
                if pfs.trigger.branch == "":
                    pfs.trigger.branch = "master"
            else:
                pfs.branch = "master"
        if pfs.name == "":
            pfs.name = pfs.repo
        if pfs.repo_type == "":
            pfs.repo_type = "user"
        if pfs.glob != "":
            pfs.glob = clean_path(pfs.glob)
        if pfs.project == "":
            pfs.project = project
    if node.HasField("cron"):
        cron = node.cron
        if not cron.HasField("start"):
            cron.start.GetCurrentTime()
        if cron.repo == "":
            cron.repo = f"{pipeline}_{cron.name}"
        if cron.project == "":
            cron.project = project


def clean_path(path: str) -> str:
    """pfsfile.CleanPath (src/internal/pfsfile/pfsfile.go): path.Clean, "." -> "/", else
    "/" + the result trimmed of slashes ("*" -> "/*", "abc/" -> "/abc")."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned == ".":
        return "/"
    return "/" + cleaned.strip("/")


def walk_input(node: pps_pb2.Input):
    """pps.VisitInput order: children first, then the node itself."""
    for children in (node.cross, node.join, node.group, node.union):
        for child in children:
            yield from walk_input(child)
    yield node


def validate_details(details: pps_pb2.PipelineInfo.Details) -> None:
    """validatePipeline, for the checks that are not name checks."""
    if not details.transform.image:
        raise unknown("pipeline transform must contain an image").wrapped("invalid transform")
    if details.HasField("input"):
        validate_input(details.input)
    if details.HasField("parallelism_spec") and details.HasField("service"):
        if details.parallelism_spec.constant != 1:
            raise unknown("services can only be run with a constant parallelism of 1")
    if details.pod_spec and not _is_json(details.pod_spec):
        raise unknown("malformed PodSpec")
    if details.pod_patch and not _is_json(details.pod_patch):
        raise unknown("malformed PodPatch")
    if details.HasField("service") and details.service.type not in SERVICE_TYPES:
        raise unknown(f"the following service type {details.service.type} is not allowed")
    if details.HasField("spout") and not details.spout.HasField("service"):
        if details.HasField("input"):
            raise unknown("spout pipelines (without a service) must not have an input")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def validate_input(root: pps_pb2.Input) -> None:
    """validateInput: unique names, then each node's own rules."""
    _validate_unique_names(set(), root)
    for node in walk_input(root):
        _validate_input_node(node)


def _validate_unique_names(names: set, node: pps_pb2.Input) -> None:
    if node.HasField("pfs") or node.HasField("cron"):
        name = node.pfs.name if node.HasField("pfs") else node.cron.name
        if name in names:
            raise unknown(f'name "{name}" was used more than once')
        names.add(name)
    for child in node.union:
        _validate_unique_names(set(names), child)
    for children in (node.cross, node.join, node.group):
        for child in children:
            _validate_unique_names(names, child)


def _validate_input_node(node: pps_pb2.Input) -> None:
    kinds = [
        kind
        for kind, present in (
            ("pfs", node.HasField("pfs")),
            ("cross", bool(node.cross)),
            ("join", bool(node.join)),
            ("group", bool(node.group)),
            ("union", bool(node.union)),
            ("cron", node.HasField("cron")),
        )
        if present
    ]
    if not kinds:
        raise unknown("no input set")
    if len(kinds) > 1:
        raise unknown("multiple input types set")
    if node.HasField("pfs"):
        _validate_pfs_input(node.pfs)
    if node.HasField("cron") and not node.cron.name:
        raise unknown("input must specify a name")


def _validate_pfs_input(pfs: pps_pb2.PFSInput) -> None:
    checks = (
        (len(pfs.name) == 0, "input must specify a name"),
        (pfs.name == "out", 'input cannot be named "out", as pachyderm already creates '
                            "/pfs/out to collect job output"),
        (pfs.repo == "", "input must specify a repo"),
        (pfs.branch == "", "input must specify a branch"),
        (not pfs.s3 and len(pfs.glob) == 0, "input must specify a glob"),
        (pfs.s3 and pfs.glob != "/", "inputs that set 's3' to 'true' must also set 'glob', "
                                     'to "/", as the S3 gateway is only able to expose data '
                                     "at the commit level"),
    )
    for failed, message in checks:
        if failed:
            raise unknown(message)


def pipeline_type(details: pps_pb2.PipelineInfo.Details) -> int:
    if details.HasField("spout"):
        return pps_pb2.PipelineInfo.PIPELINE_TYPE_SPOUT
    if details.HasField("service"):
        return pps_pb2.PipelineInfo.PIPELINE_TYPE_SERVICE
    return pps_pb2.PipelineInfo.PIPELINE_TYPE_TRANSFORM


def expected_workers(details: pps_pb2.PipelineInfo.Details) -> int:
    """getExpectedNumWorkers."""
    constant = details.parallelism_spec.constant if details.HasField("parallelism_spec") else 0
    return int(constant) if constant > 0 else 1

