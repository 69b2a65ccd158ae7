"""The JSON schema ``GET /api-docs/schema/submit`` publishes (informative: FTS never
validates submissions against it, e.g. it accepts a negative ``filesize``)."""

from __future__ import annotations

SUBMIT_SCHEMA: dict = {
    "title": "Job submission",
    "type": "object",
    "properties": {
        "params": {
            "title": "Job parameters",
            "type": ["object", "null"],
            "properties": {
                "verify_checksum": {"type": ["boolean", "null"]},
                "reuse": {
                    "type": ["boolean", "null"],
                    "title": "If set to true, srm sessions will be reused",
                },
                "destination_spacetoken": {
                    "type": ["string", "null"],
                    "title": "Destination space token",
                },
                "bring_online": {
                    "type": ["integer", "null"],
                    "title": "Bring online operation timeout",
                },
                "copy_pin_lifetime": {
                    "type": ["integer", "null"],
                    "title": "Minimum lifetime when bring online is used. -1 means no bring online",
                    "minimum": -1,
                },
                "job_metadata": {"type": ["object", "null"]},
                "source_spacetoken": {"type": ["string", "null"]},
                "overwrite": {"type": ["boolean", "null"]},
                "dst_file_report": {"type": ["boolean", "null"]},
                "gridftp": {"type": ["string", "null"], "title": "Reserved for future usage"},
                "retry": {"type": ["integer", "null"]},
                "multihop": {"type": ["boolean", "null"]},
                "timeout": {"type": ["integer", "null"], "title": "Timeout in seconds"},
                "nostreams": {"type": ["integer", "null"], "title": "Number of streams"},
                "buffer_size": {"type": ["integer", "null"], "title": "Buffer size"},
                "strict_copy": {
                    "type": ["boolean", "null"],
                    "title": "Disable all checks, just copy the file",
                },
                "disable_cleanup": {
                    "type": ["boolean", "null"],
                    "title": "Enable/disable the copy clean-up happening when a transfer fails",
                },
                "priority": {"type": ["integer", "null"], "title": "Job priority"},
                "ipv4": {
                    "type": ["boolean", "null"],
                    "title": "Force IPv4 if the underlying protocol supports it",
                },
                "ipv6": {
                    "type": ["boolean", "null"],
                    "title": "Force IPv6 if the underlying protocol supports it",
                },
            },
        },
        "files": {
            "type": "array",
            "items": {
                "title": "Transfer",
                "type": "object",
                "required": ["sources", "destinations"],
                "properties": {
                    "sources": {
                        "type": "array",
                        "items": {"title": "URL", "type": "string"},
                        "minItems": 1,
                    },
                    "destinations": {
                        "type": "array",
                        "items": {"title": "URL", "type": "string"},
                        "minItems": 1,
                    },
                    "priority": {"type": ["integer", "null"], "title": "Job priority"},
                    "metadata": {"type": ["object", "null"]},
                    "filesize": {"type": ["integer", "null"], "minimum": 0},
                    "checksum": {
                        "type": ["string", "null"],
                        "title": "User defined checksum in the form algorithm:value",
                    },
                    "activity": {"type": ["string", "null"], "title": "Activity share"},
                },
            },
        },
        "delete": {"type": "array", "items": {"type": ["object", "string"]}},
    },
}
