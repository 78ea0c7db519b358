print("aidge")
