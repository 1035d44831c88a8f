"""zfsaga.guest"""
