"""zfsaga.compensations"""
