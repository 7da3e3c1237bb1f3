"""Who is calling and what they may do: tokens, the policy decision, the identity read model."""
