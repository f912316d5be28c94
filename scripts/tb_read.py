#!/usr/bin/env python3
"""Reads every run under LOGDIR with TensorBoard's own event reader and prints one JSON object.

Usage: tb_read.py LOGDIR   (run it with the python of scripts/tb-venv.sh)

{"runs": {"<run>": {"scalars": {"<tag>": [[step, value], ...]},
                    "text": {"<tag>": ["...", ...]},
                    "images": {"<tag>": [{"step": s, "width": w, "height": h}, ...]},
                    "tensors_tags": ["<tag>", ...]}},
 "plugins": {"hparams": {"<run>": ["<tag>", ...]}, "text": {...}},
 "hparams_data": {"<run>": {"<tag>": <HParamsPluginData as JSON>}}}

Run names are paths relative to LOGDIR ("." for LOGDIR itself). Every event is kept (no
sampling). hparams_data is the plugin content decoded with TensorBoard's hparams protos.
"""

import json
import math
import os
import sys


def _number(x):
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return repr(x)  # JSON has no NaN/Infinity; keep them visible as strings
    return x


def _decode_strings(tensor_proto, tensor_util):
    try:
        array = tensor_util.make_ndarray(tensor_proto)
        items = array.reshape(-1).tolist() if hasattr(array, "reshape") else [array]
    except Exception:  # fall back to the raw field
        items = list(tensor_proto.string_val)
    out = []
    for item in items:
        if isinstance(item, bytes):
            out.append(item.decode("utf-8", errors="replace"))
        else:
            out.append(str(item))
    return out


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: tb_read.py LOGDIR\n")
        return 2
    logdir = argv[1]
    if not os.path.isdir(logdir):
        sys.stderr.write("tb_read.py: %s is not a directory\n" % logdir)
        return 2

    from google.protobuf import json_format
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.backend.event_processing import event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    size_guidance = {key: 0 for key in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    multiplexer = event_multiplexer.EventMultiplexer(size_guidance=size_guidance)
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()

    text_tags = multiplexer.PluginRunToTagToContent("text")
    runs = {}
    for run, tags in sorted(multiplexer.Runs().items()):
        accumulator = multiplexer.GetAccumulator(run)
        scalars = {}
        for tag in tags.get(event_accumulator.SCALARS, []):
            scalars[tag] = [[e.step, _number(e.value)] for e in accumulator.Scalars(tag)]
        images = {}
        for tag in tags.get(event_accumulator.IMAGES, []):
            images[tag] = [
                {"step": e.step, "width": e.width, "height": e.height}
                for e in accumulator.Images(tag)
            ]
        tensor_tags = sorted(tags.get(event_accumulator.TENSORS, []))
        text = {}
        for tag in sorted(text_tags.get(run, {})):
            if tag not in tensor_tags:
                continue
            values = []
            for e in accumulator.Tensors(tag):
                values.extend(_decode_strings(e.tensor_proto, tensor_util))
            text[tag] = values
        runs[run] = {
            "scalars": scalars,
            "text": text,
            "images": images,
            "tensors_tags": tensor_tags,
        }

    plugins = {}
    hparams_data = {}
    for plugin in ("hparams", "text"):
        by_run = multiplexer.PluginRunToTagToContent(plugin)
        plugins[plugin] = {run: sorted(tag_to_content) for run, tag_to_content in by_run.items()}
        if plugin == "hparams":
            for run, tag_to_content in by_run.items():
                decoded = {}
                for tag, content in tag_to_content.items():
                    try:
                        message = plugin_data_pb2.HParamsPluginData.FromString(content)
                        decoded[tag] = json_format.MessageToDict(
                            message, preserving_proto_field_name=True
                        )
                    except Exception as error:  # report, don't crash
                        decoded[tag] = {"error": str(error)}
                hparams_data[run] = decoded

    json.dump(
        {"runs": runs, "plugins": plugins, "hparams_data": hparams_data},
        sys.stdout,
        sort_keys=True,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
