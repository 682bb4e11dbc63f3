import type { FastifyInstance } from 'fastify';
import { route, schemas } from '../../http/openapi.ts';
import { id } from '../../http/validate.ts';
import { scanAll } from '../../ports/store.ts';
import type { Service } from '../../ports/service.ts';
import { byTime } from './businessLogic.ts';
import { notificationsOf, type Notification, type NotificationApiCommand } from './notification.ts';

type Params = Record<string, string | undefined>;

/** Notification's part of the lifecycle API, under /api: what each customer was told. */
export function notificationApi(notification: Service<NotificationApiCommand>) {
  return async (app: FastifyInstance) => {
    app.get<{ Params: Params }>('/customers/:userId/notifications', {
      schema: route({ access: 'shop', summary: 'The messages a customer was sent, oldest first', tags: ['lifecycle'], params: { userId: 'the customer (user)' },
        ok: schemas.object({ user_id: schemas.string, notifications: { type: 'array', items: schemas.object({ kind: schemas.string, order_id: schemas.string, saga_id: schemas.string, subject: schemas.string, text: schemas.string, at: schemas.string }) } }),
        errors: ['invalid-id'],
      }),
    }, async (req) => {
      const userId = id(req.params.userId, 'user_id');
      const found: Notification[] = [];
      for await (const [, message] of scanAll<Notification>(notification.store, notificationsOf(userId))) found.push(message);
      found.sort(byTime);
      return {
        user_id: userId,
        notifications: found.map((n) => ({ kind: n.kind, order_id: n.orderId, saga_id: n.sagaId, subject: n.subject, text: n.text, at: new Date(n.at).toISOString() })),
      };
    });
  };
}
