"""The build: plan, context, build, prove, push and report, step for step."""
