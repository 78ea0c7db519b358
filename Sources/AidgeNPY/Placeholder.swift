import AidgeCore
