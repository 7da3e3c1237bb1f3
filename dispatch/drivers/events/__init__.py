"""Event drivers: the sources that turn the outside world (schedules, queues, containers) into
events of an organization; the drivers handler group runs them (handlers/driver_supervisor.py)."""
