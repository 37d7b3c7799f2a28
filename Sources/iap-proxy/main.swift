import IAPAuth

print(Base64URL.encode([1, 2, 3]))
