# Image repositories: immutable tags (a tag is one image forever), scanned on push, encrypted
# with a customer key; untagged images expire after a week, old tagged ones past keep_images.
data "aws_caller_identity" "current" {}

resource "aws_kms_key" "ecr" {
  description         = "${var.name} ECR images"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a KMS key policy: "*" is this key, and the account statement is AWS's default delegation to IAM
  #checkov:skip=CKV_AWS_111:a KMS key policy: "*" is this key, and the account statement is AWS's default delegation to IAM
  #checkov:skip=CKV_AWS_356:a KMS key policy: "*" is this key, and the account statement is AWS's default delegation to IAM
  statement {
    sid       = "AccountAdministers" # AWS's default key policy: access is granted by IAM policies
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_ecr_repository" "this" {
  for_each             = toset(var.repositories)
  name                 = "${var.name}/${each.value}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.ecr.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest tagged images"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*"]
          countType      = "imageCountMoreThan"
          countNumber    = var.keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
