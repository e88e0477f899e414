"""Remote control: inspect, control and status through real workers."""
