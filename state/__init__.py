"""zfsaga.state"""
