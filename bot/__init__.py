"""Chat front ends: Slack and Discord, and who may see what through them."""
