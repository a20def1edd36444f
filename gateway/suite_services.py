# Generated from suite.toml by `make generate`: edit suite.toml or the template
# templates/gateway/suite_services.py.j2, not this file.
"""The services the gateway fronts (every service of suite.toml), with their generated Connect
applications (make proto writes <name>/proto/<name>_connect.py)."""

from __future__ import annotations

from audit.proto.audit_connect import AuditSrvASGIApplication
from customer.proto.customer_connect import CustomerSrvASGIApplication
from gateway.fronted import FrontedService
from product.proto.product_connect import ProductSrvASGIApplication
from promotion.proto.promotion_connect import PromotionSrvASGIApplication
from user.proto.user_connect import UserSrvASGIApplication

SERVICES: tuple[FrontedService, ...] = (
    FrontedService(
        "user",
        "user.UserSrv",
        UserSrvASGIApplication,
    ),
    FrontedService(
        "promotion",
        "promotion.PromotionSrv",
        PromotionSrvASGIApplication,
    ),
    FrontedService(
        "audit",
        "audit.AuditSrv",
        AuditSrvASGIApplication,
    ),
    FrontedService(
        "customer",
        "customer.CustomerSrv",
        CustomerSrvASGIApplication,
    ),
    FrontedService(
        "product",
        "product.ProductSrv",
        ProductSrvASGIApplication,
    ),
)
