# One IRSA role: only the service account namespace/name of this cluster may assume it, and it
# reaches only its prefixes of the artifact bucket.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.role_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "access" {
  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in distinct(concat(var.read_prefixes, var.write_prefixes)) : "${p}*"]
    }
  }

  statement {
    sid       = "Read"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for p in distinct(concat(var.read_prefixes, var.write_prefixes)) : "${var.bucket_arn}/${p}*"]
  }

  dynamic "statement" {
    for_each = length(var.write_prefixes) > 0 ? [1] : []
    content {
      sid       = "Write"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for p in var.write_prefixes : "${var.bucket_arn}/${p}*"]
    }
  }

  statement {
    sid       = "UseBucketKey"
    actions   = length(var.write_prefixes) > 0 ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "access" {
  name   = "artifact-bucket"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.access.json
}
