# The primary region, and a second one for v4 (multi-region). Both are aliases of the same
# provider so the region module is called twice with a different `aws` each time.
provider "aws" {
  region = var.primary_region

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "secondary"
  region = var.secondary_region

  default_tags {
    tags = local.tags
  }
}
