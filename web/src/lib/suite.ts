// Generated from suite.toml by `make generate` (template templates/web/suite.ts.j2): edit those, not this file.
// The suite's services as the web UI sees them: their Connect service descriptors (generated
// by `make proto` into src/gen/) and the roles allowed to write. The UI builds each service's
// pages from its descriptor (src/lib/records.ts), so a new service needs no code here.
import type { DescService } from '@bufbuild/protobuf';
import { UserSrv as userService } from '$gen/user/proto/user_pb';
import { PromotionSrv as promotionService } from '$gen/promotion/proto/promotion_pb';
import { AuditSrv as auditService } from '$gen/audit/proto/audit_pb';
import { CustomerSrv as customerService } from '$gen/customer/proto/customer_pb';
import { ProductSrv as productService } from '$gen/product/proto/product_pb';

export interface SuiteService {
  /** Its name in suite.toml (the URL segment of its pages). */
  name: string;
  descriptor: DescService;
  /** Roles allowed to write (suite.toml's `writers`); everyone signed in reads. */
  writers: readonly string[];
  /** The token issuer (the login page talks to it). */
  issuesTokens: boolean;
  /** The audit consumer (the history page reads it). */
  consumesAudit: boolean;
}

export const suite: readonly SuiteService[] = [
  {
    name: 'user',
    descriptor: userService,
    writers: ['admin'],
    issuesTokens: true,
    consumesAudit: false
  },
  {
    name: 'promotion',
    descriptor: promotionService,
    writers: ['admin'],
    issuesTokens: false,
    consumesAudit: false
  },
  {
    name: 'audit',
    descriptor: auditService,
    writers: [],
    issuesTokens: false,
    consumesAudit: true
  },
  {
    name: 'customer',
    descriptor: customerService,
    writers: ['admin'],
    issuesTokens: false,
    consumesAudit: false
  },
  {
    name: 'product',
    descriptor: productService,
    writers: ['admin'],
    issuesTokens: false,
    consumesAudit: false
  },
];
