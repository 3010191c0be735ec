#!/usr/bin/env python3
"""Reads back every object under a prefix of an S3 bucket or Azure Blob container and prints one
JSON document: each key's size, the sha256 of its content (read in full) and its user metadata.

The end-to-end tests compare it with the source files, through clients that are not
object_store, so a bug shared by our writer and our reader cannot hide. Run it with the venv
that scripts/setup makes ($MOVER_TOOLS/venv/bin/python):

  verify_objects.py --kind s3 --endpoint http://127.0.0.1:PORT --bucket B [--prefix P]
      [--access-key K --secret-key S --region R]
  verify_objects.py --kind azure_blob --endpoint http://127.0.0.1:PORT/devstoreaccount1
      --container C [--prefix P] [--account A --key KEY]

Output: {"kind": ..., "bucket": ..., "prefix": ..., "count": N,
         "objects": {"KEY": {"size": N, "sha256": "HEX", "metadata": {"k": "v"}}}}
Keys are the full object names (prefix included). Exit status 2 on a usage error, 1 when the
service cannot be read (the service's message goes to stderr).
"""

import argparse
import hashlib
import json
import sys

CHUNK = 1 << 20

# Azurite's published development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def s3_objects(args):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        region_name=args.region,
        # The SHA-256 of every body is computed below. boto3's own check of the stored checksum
        # is off: moto's CopyObject keeps a multipart object's composite checksum as if it
        # covered the whole object (models.py copy_object), so after Bifrost sets metadata by
        # copying an object onto itself, that check would compare unlike things.
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            response_checksum_validation="when_required",
        ),
    )
    out = {}
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=args.bucket, Prefix=args.prefix
    )
    for page in pages:
        for item in page.get("Contents", []):
            key = item["Key"]
            head = client.head_object(Bucket=args.bucket, Key=key)
            body = client.get_object(Bucket=args.bucket, Key=key)["Body"]
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: body.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
            out[key] = {"size": size, "sha256": digest.hexdigest(), "metadata": head["Metadata"]}
    return out


def azure_objects(args):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        account_url=args.endpoint,
        credential={"account_name": args.account, "account_key": args.key},
    )
    container = service.get_container_client(args.bucket)
    out = {}
    for item in container.list_blobs(name_starts_with=args.prefix or None):
        blob = container.get_blob_client(item.name)
        props = blob.get_blob_properties()
        digest, size = hashlib.sha256(), 0
        for chunk in blob.download_blob().chunks():
            digest.update(chunk)
            size += len(chunk)
        out[item.name] = {
            "size": size,
            "sha256": digest.hexdigest(),
            "metadata": dict(props.metadata or {}),
        }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", required=True, choices=["s3", "azure_blob"])
    p.add_argument("--endpoint", required=True, help="S3: http://HOST:PORT; Azure: the account URL")
    p.add_argument("--bucket", "--container", dest="bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--access-key", default="testing", help="S3 access key id")
    p.add_argument("--secret-key", default="testing", help="S3 secret access key")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default=AZURITE_ACCOUNT, help="Azure storage account")
    p.add_argument("--key", default=AZURITE_KEY, help="Azure account key (base64)")
    args = p.parse_args()
    try:
        objects = s3_objects(args) if args.kind == "s3" else azure_objects(args)
    except Exception as e:  # the service's own message is what a failing test should show
        print(f"verify_objects: {args.kind} {args.endpoint} {args.bucket}: {e}", file=sys.stderr)
        return 1
    doc = {
        "kind": args.kind,
        "bucket": args.bucket,
        "prefix": args.prefix,
        "count": len(objects),
        "objects": objects,
    }
    json.dump(doc, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
