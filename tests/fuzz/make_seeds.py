#!/usr/bin/python3
"""Writes the seed corpora from protobuf text format (run from anywhere;
needs protoc). The fuzzers grow their own corpora from these."""
import pathlib
import subprocess
import zlib

here = pathlib.Path(__file__).resolve().parent
proto = here.parents[1] / "proto"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def checksum(body):
    crc, out = zlib.crc32(body.encode()), ""
    for _ in range(6):
        out = ALPHABET[crc % 62] + out
        crc //= 62
    return out


def key(prefix, random="A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"):
    return prefix + random + checksum(prefix + random)


def encode(message, text):
    return subprocess.run(["protoc", f"--encode={message}", f"-I{proto}",
                           "latchkey/v1/key_sync.proto", "latchkey/v1/key_admin.proto"],
                          input=text.encode(), capture_output=True, check=True).stdout


def write(target, name, data):
    d = here / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


for name, value in {"api_key": key("lkp_"), "secret_key": key("lks_"), "token": key("lkt_"),
                    "bad_checksum": key("lkp_")[:-1] + "x", "empty": "", "prefix_only": "lkp_",
                    "key_id": "key_0123456789abcdef", "utf8": "lkp_\u00e9\u00e9"}.items():
    write("key_parser", name, value)

digest = 'digest: "' + "\\x01" * 32 + '"'
entry = f'{digest} key_id: "key_0123456789abcdef" project_id: "prj_0123456789ab" kind: API_KEY state: KEY_STATE_ACTIVE'
messages = [
    encode("latchkey.v1.WatchResponse", f'store_id: "st_x" snapshot_chunk {{ entries {{ {entry} }} disabled_project_ids: "prj_0123456789ab" }}'),
    encode("latchkey.v1.WatchResponse", 'store_id: "st_x" snapshot_end { revision: 7 }'),
    encode("latchkey.v1.WatchResponse", f'store_id: "st_x" event {{ revision: 8 upserts {{ {entry.replace("KEY_STATE_ACTIVE", "KEY_STATE_REVOKED")} }} }}'),
    encode("latchkey.v1.WatchResponse", f'event {{ revision: 9 removed_digests: "{chr(92)}x01" project_access {{ project_id: "prj_0123456789ab" enabled: true }} }}'),
    encode("latchkey.v1.WatchResponse", 'progress { head_revision: 9 }'),
]
write("watch_apply", "snapshot_then_events", b"".join(bytes([len(m)]) + m for m in messages))
write("watch_apply", "event_only", bytes([len(messages[2])]) + messages[2])

# The first byte indexes kTargets in tests/fuzz/admin_requests_fuzz.cc.
requests = {
    0: ("latchkey.v1.CreateProjectRequest", 'name: "shop"'),
    2: ("latchkey.v1.ListProjectsRequest", 'page_size: 3 page_token: "AAAA"'),
    3: ("latchkey.v1.SetApiAccessRequest", 'project_id: "prj_0123456789ab" enabled: false'),
    4: ("latchkey.v1.GenerateApiKeyRequest", 'project_id: "prj_0123456789ab" name: "ios" expire_time { seconds: 4102444800 }'),
    6: ("latchkey.v1.RevokeApiKeyRequest", 'key_id: "key_0123456789abcdef"'),
    7: ("latchkey.v1.RotateApiKeyRequest", 'key_id: "key_0123456789abcdef" grace_period { seconds: 3600 }'),
    9: ("latchkey.v1.DeleteSecretKeyRequest", 'key_id: "key_0123456789abcdef" confirm: "DELETE"'),
    11: ("latchkey.v1.ListKeysRequest", 'project_id: "prj_0123456789ab" page_size: -1'),
    13: ("latchkey.v1.CreatePrincipalRequest", 'name: "ci" role: ROLE_MANAGER'),
    16: ("latchkey.v1.CreateProjectRequest", 'name: "x"'),
    17: ("latchkey.v1.FindKeyRequest", f'value: "{key("lkp_")}"'),
}
for method, (message, text) in requests.items():
    write("admin_requests", f"method_{method}", bytes([method]) + encode(message, text))
print("seeds written")
