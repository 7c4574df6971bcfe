output "repository_urls" {
  description = "Repository URLs by name (docker push URL:TAG)."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.repository_url }
}
