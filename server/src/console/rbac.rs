//! Who may do what. [`decide`] is the one rule book: every REST handler and
//! server function reaches it through `ConsoleService::authorize`, so the UI
//! hiding a button is never what protects an action.

use app::model::{Role, TokenScope};

/// Everything an actor can ask the console to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // Platform-wide.
    ListUsers,
    CreateUser,
    UpdateUser,
    ViewPlatformAudit,
    CreateTeam,
    ManageDatacenters,
    /// Letting a team use a datacenter.
    OpenDatacenter,
    // On the actor's own account.
    ChangeOwnPassword,
    ListOwnTokens,
    CreateOwnToken,
    RevokeOwnToken,
    // Inside one team.
    ViewTeam,
    ViewTeamAudit,
    ManageMembers,
    /// Granting, taking away or touching the `owner` role.
    ManageOwners,
    DeleteTeam,
    /// See the team's apps, components and their events.
    ViewApps,
    /// Create and delete apps.
    ManageApps,
    /// Create, change, delete and operate components: upload source,
    /// build, deploy, roll back, and ask the builder what it would do.
    OperateComponents,
    /// Read a component's push-webhook secret. Not a change, but the secret
    /// lets its holder trigger builds, so it needs a team admin and is
    /// refused to read-only tokens like a mutation.
    ViewWebhookSecret,
    /// A push webhook delivery. Anyone may knock: the datacenter checks the
    /// delivery's signature against the component's secret.
    DeliverWebhook,
    /// See the team's gateway routes, certificates (never their keys) and
    /// route traffic figures.
    ViewRoutes,
    /// Add, change and delete HTTP and TCP routes: the same trust as
    /// operating components, since a route only sends traffic to them.
    ManageRoutes,
    /// Upload and delete TLS certificates. A private key can impersonate
    /// the team's domains, so it needs a team admin.
    ManageCertificates,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::ListUsers => "user.list",
            Action::CreateUser => "user.create",
            Action::UpdateUser => "user.update",
            Action::ViewPlatformAudit => "audit.view",
            Action::CreateTeam => "team.create",
            Action::ChangeOwnPassword => "account.password",
            Action::ListOwnTokens => "token.list",
            Action::CreateOwnToken => "token.create",
            Action::RevokeOwnToken => "token.revoke",
            Action::ViewTeam => "team.view",
            Action::ViewTeamAudit => "team.audit",
            Action::ManageMembers => "team.members",
            Action::ManageOwners => "team.owners",
            Action::DeleteTeam => "team.delete",
            Action::ManageDatacenters => "datacenter.manage",
            Action::OpenDatacenter => "datacenter.open",
            Action::ViewApps => "app.view",
            Action::ManageApps => "app.manage",
            Action::OperateComponents => "component.operate",
            Action::ViewWebhookSecret => "component.webhook.view",
            Action::DeliverWebhook => "component.webhook.deliver",
            Action::ViewRoutes => "route.view",
            Action::ManageRoutes => "route.manage",
            Action::ManageCertificates => "certificate.manage",
        }
    }

    /// Whether the action changes state (and so is refused to read-only tokens).
    pub fn mutates(self) -> bool {
        !matches!(
            self,
            Action::ListUsers
                | Action::ViewPlatformAudit
                | Action::ListOwnTokens
                | Action::ViewTeam
                | Action::ViewTeamAudit
                | Action::ViewApps
                | Action::ViewRoutes
        )
    }

    /// The least team role that may do this, for team-scoped actions.
    fn min_team_role(self) -> Option<Role> {
        match self {
            Action::ViewTeam | Action::ViewApps | Action::ViewRoutes => Some(Role::Viewer),
            Action::OperateComponents | Action::ManageRoutes => Some(Role::Developer),
            Action::ManageApps | Action::ViewWebhookSecret | Action::ManageCertificates => {
                Some(Role::Admin)
            }
            Action::ViewTeamAudit | Action::ManageMembers => Some(Role::Admin),
            Action::ManageOwners | Action::DeleteTeam => Some(Role::Owner),
            _ => None,
        }
    }
}

/// The facts a decision rests on.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub is_platform_admin: bool,
    pub scope: TokenScope,
    /// The actor's role in the team the action targets, if it targets one.
    pub team_role: Option<Role>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the actor may know the target exists.
    Deny,
    /// Refused, and the actor is not in the team: answer as if it did not
    /// exist, so team names do not leak.
    Hide,
}

pub fn decide(subject: Subject, action: Action) -> Decision {
    if subject.scope == TokenScope::ReadOnly && action.mutates() {
        return Decision::Deny;
    }
    if subject.is_platform_admin {
        return Decision::Allow;
    }
    match action {
        Action::ListUsers
        | Action::CreateUser
        | Action::UpdateUser
        | Action::ViewPlatformAudit
        | Action::ManageDatacenters
        | Action::OpenDatacenter => Decision::Deny,
        Action::CreateTeam
        | Action::ChangeOwnPassword
        | Action::ListOwnTokens
        | Action::CreateOwnToken
        | Action::RevokeOwnToken
        | Action::DeliverWebhook => Decision::Allow,
        team_action => match (subject.team_role, team_action.min_team_role()) {
            (None, _) => Decision::Hide,
            (Some(have), Some(need)) if have >= need => Decision::Allow,
            _ => Decision::Deny,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Option<Role>) -> Subject {
        Subject {
            is_platform_admin: false,
            scope: TokenScope::Full,
            team_role: role,
        }
    }

    #[test]
    fn team_roles_are_ordered_by_power() {
        use Action::*;
        let expect = |role, action| decide(member(Some(role)), action);
        assert_eq!(expect(Role::Viewer, ViewTeam), Decision::Allow);
        assert_eq!(expect(Role::Viewer, ManageMembers), Decision::Deny);
        assert_eq!(expect(Role::Developer, ManageMembers), Decision::Deny);
        assert_eq!(expect(Role::Developer, ViewTeamAudit), Decision::Deny);
        assert_eq!(expect(Role::Admin, ManageMembers), Decision::Allow);
        assert_eq!(expect(Role::Admin, ViewTeamAudit), Decision::Allow);
        assert_eq!(expect(Role::Admin, ManageOwners), Decision::Deny);
        assert_eq!(expect(Role::Admin, DeleteTeam), Decision::Deny);
        assert_eq!(expect(Role::Owner, ManageOwners), Decision::Allow);
        assert_eq!(expect(Role::Owner, DeleteTeam), Decision::Allow);
        assert_eq!(expect(Role::Viewer, ViewApps), Decision::Allow);
        assert_eq!(expect(Role::Viewer, OperateComponents), Decision::Deny);
        assert_eq!(expect(Role::Developer, OperateComponents), Decision::Allow);
        assert_eq!(expect(Role::Developer, ManageApps), Decision::Deny);
        assert_eq!(expect(Role::Admin, ManageApps), Decision::Allow);
        assert_eq!(expect(Role::Owner, ManageDatacenters), Decision::Deny);
        assert_eq!(expect(Role::Developer, ViewWebhookSecret), Decision::Deny);
        assert_eq!(expect(Role::Admin, ViewWebhookSecret), Decision::Allow);
    }

    #[test]
    fn webhook_deliveries_need_no_member_but_secrets_need_a_full_token() {
        assert_eq!(
            decide(member(None), Action::DeliverWebhook),
            Decision::Allow
        );
        let admin_ro = Subject {
            is_platform_admin: false,
            scope: TokenScope::ReadOnly,
            team_role: Some(Role::Owner),
        };
        assert_eq!(decide(admin_ro, Action::ViewWebhookSecret), Decision::Deny);
        assert_eq!(decide(admin_ro, Action::ViewApps), Decision::Allow);
    }

    #[test]
    fn routes_need_a_developer_and_certificates_an_admin() {
        use Action::*;
        let expect = |role, action| decide(member(Some(role)), action);
        assert_eq!(expect(Role::Viewer, ViewRoutes), Decision::Allow);
        assert_eq!(expect(Role::Viewer, ManageRoutes), Decision::Deny);
        assert_eq!(expect(Role::Developer, ManageRoutes), Decision::Allow);
        assert_eq!(expect(Role::Developer, ManageCertificates), Decision::Deny);
        assert_eq!(expect(Role::Admin, ManageCertificates), Decision::Allow);
        assert_eq!(decide(member(None), ViewRoutes), Decision::Hide);
        let owner_ro = Subject {
            is_platform_admin: false,
            scope: TokenScope::ReadOnly,
            team_role: Some(Role::Owner),
        };
        assert_eq!(decide(owner_ro, ViewRoutes), Decision::Allow);
        assert_eq!(decide(owner_ro, ManageRoutes), Decision::Deny);
        assert_eq!(decide(owner_ro, ManageCertificates), Decision::Deny);
    }

    #[test]
    fn outsiders_do_not_learn_that_a_team_exists() {
        assert_eq!(decide(member(None), Action::ViewTeam), Decision::Hide);
        assert_eq!(decide(member(None), Action::DeleteTeam), Decision::Hide);
    }

    #[test]
    fn platform_actions_need_a_platform_admin() {
        assert_eq!(
            decide(member(Some(Role::Owner)), Action::CreateUser),
            Decision::Deny
        );
        assert_eq!(decide(member(None), Action::CreateTeam), Decision::Allow);
        let admin = Subject {
            is_platform_admin: true,
            scope: TokenScope::Full,
            team_role: None,
        };
        assert_eq!(decide(admin, Action::CreateUser), Decision::Allow);
        assert_eq!(decide(admin, Action::DeleteTeam), Decision::Allow);
    }

    #[test]
    fn read_only_tokens_never_mutate_even_for_admins() {
        let admin_ro = Subject {
            is_platform_admin: true,
            scope: TokenScope::ReadOnly,
            team_role: None,
        };
        assert_eq!(decide(admin_ro, Action::CreateUser), Decision::Deny);
        assert_eq!(decide(admin_ro, Action::ListUsers), Decision::Allow);
        let owner_ro = Subject {
            is_platform_admin: false,
            scope: TokenScope::ReadOnly,
            team_role: Some(Role::Owner),
        };
        assert_eq!(decide(owner_ro, Action::DeleteTeam), Decision::Deny);
        assert_eq!(decide(owner_ro, Action::ViewTeam), Decision::Allow);
    }
}
