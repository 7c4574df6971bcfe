# Remote state in S3 with locking. The settings (bucket, key, region, lock) are given at init
# time from a file that is never committed:
#   cp backend.hcl.example backend.hcl   # edit it
#   terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {}
}
