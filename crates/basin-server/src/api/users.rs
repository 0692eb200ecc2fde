//! Users and roles (administrators).

use std::collections::BTreeMap;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::access::{Role, User};
use basin_service::NewUser;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller};
use crate::State;
use crate::error::ApiError;

/// A user.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    name: String,
    attributes: BTreeMap<String, String>,
    roles: Vec<String>,
    disabled: bool,
    /// Whether the user can sign in with a password.
    has_password: bool,
    created_at: String,
}

/// A role.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleView {
    name: String,
    description: String,
    members: Vec<String>,
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleList {
    roles: Vec<RoleView>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            name: u.name,
            attributes: u.attributes,
            roles: u.roles.into_iter().collect(),
            disabled: u.disabled,
            has_password: u.has_password,
            created_at: u.created_at,
        }
    }
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        RoleView {
            name: r.name,
            description: r.description,
            members: r.members.into_iter().collect(),
            created_at: r.created_at,
        }
    }
}

/// A user to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserRequest {
    name: String,
    /// At least 8 characters; none: the user signs in with tokens only.
    password: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// A role to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRoleRequest {
    name: String,
    #[serde(default)]
    description: String,
}

/// A member to add to a role.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberRequest {
    user: String,
}

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, description = "Users (admins only)", body = UserList)))]
pub(crate) async fn list_users(Extension(c): Extension<Caller>) -> ApiResult<Json<UserList>> {
    let users = c.session.users().await?;
    Ok(Json(UserList {
        users: users.into_iter().map(UserView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", request_body = NewUserRequest, responses((status = 201, description = "The user", body = UserView)))]
pub(crate) async fn create_user(
    Extension(c): Extension<Caller>,
    Body2(u): Body2<NewUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = c
        .session
        .create_user(NewUser {
            name: u.name,
            password: u.password,
            attributes: u.attributes,
            roles: u.roles,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(put, path = "/api/v1/users/{user}/attributes", params(("user" = String, Path)), request_body = BTreeMap<String, String>,
    responses((status = 200, description = "The user", body = UserView)))]
pub(crate) async fn set_user_attributes(
    Extension(c): Extension<Caller>,
    Path(user): Path<String>,
    Body2(attrs): Body2<BTreeMap<String, String>>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        c.session.set_user_attributes(&user, &attrs).await?.into(),
    ))
}

/// A new password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordRequest {
    /// Needed to change your own password (administrators may leave it out).
    current_password: Option<String>,
    /// At least 8 characters.
    new_password: String,
}

/// The password was set and the user's login sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PasswordSet {
    user: String,
    sessions_ended: bool,
}

#[utoipa::path(put, path = "/api/v1/users/{user}/password", params(("user" = String, Path)), request_body = PasswordRequest,
    responses((status = 200, description = "Password set; the user's login sessions (this one too) ended, service tokens stay", body = PasswordSet),
              (status = 403, description = "Another user's password and not an administrator, or a wrong current password", body = crate::error::Problem),
              (status = 429, description = "Too many wrong current passwords", body = crate::error::Problem)))]
pub(crate) async fn set_password(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Extension(c): Extension<Caller>,
    Path(user): Path<String>,
    Body2(p): Body2<PasswordRequest>,
) -> ApiResult<Json<PasswordSet>> {
    // Guessing the current password here is limited like guessing it at login.
    let ip = addr.ip();
    if let Some(wait) = state.limiter.locked(&user, ip) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many wrong passwords for this user from this address; try again in {wait} s"
            ),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    let guessed = p.current_password.is_some();
    match c
        .session
        .set_password(&user, p.current_password, p.new_password)
        .await
    {
        Ok(()) => Ok(Json(PasswordSet {
            user,
            sessions_ended: true,
        })),
        Err(e) => {
            if guessed && matches!(e, basin_service::ServiceError::Denied(_)) {
                state.limiter.failed(&user, ip);
            }
            Err(e.into())
        }
    }
}

#[utoipa::path(post, path = "/api/v1/users/{user}/disable", params(("user" = String, Path)),
    responses((status = 200, description = "The user, disabled: its sign-ins and tokens stop working (admins only)", body = UserView)))]
pub(crate) async fn disable_user(
    Extension(c): Extension<Caller>,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(c.session.disable_user(&user).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/users/{user}/enable", params(("user" = String, Path)),
    responses((status = 200, description = "The user, enabled again (admins only)", body = UserView)))]
pub(crate) async fn enable_user(
    Extension(c): Extension<Caller>,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(c.session.enable_user(&user).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/roles", responses((status = 200, description = "Roles (admins only)", body = RoleList)))]
pub(crate) async fn list_roles(Extension(c): Extension<Caller>) -> ApiResult<Json<RoleList>> {
    let roles = c.session.roles().await?;
    Ok(Json(RoleList {
        roles: roles.into_iter().map(RoleView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/roles", request_body = NewRoleRequest, responses((status = 201, description = "The role", body = RoleView)))]
pub(crate) async fn create_role(
    Extension(c): Extension<Caller>,
    Body2(r): Body2<NewRoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    let role = c.session.create_role(&r.name, &r.description).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

#[utoipa::path(post, path = "/api/v1/roles/{role}/members", params(("role" = String, Path)), request_body = MemberRequest,
    responses((status = 200, description = "The role", body = RoleView)))]
pub(crate) async fn add_member(
    Extension(c): Extension<Caller>,
    Path(role): Path<String>,
    Body2(m): Body2<MemberRequest>,
) -> ApiResult<Json<RoleView>> {
    Ok(Json(c.session.add_member(&role, &m.user).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/roles/{role}/members/{user}", params(("role" = String, Path), ("user" = String, Path)),
    responses((status = 200, description = "The role", body = RoleView)))]
pub(crate) async fn remove_member(
    Extension(c): Extension<Caller>,
    Path((role, user)): Path<(String, String)>,
) -> ApiResult<Json<RoleView>> {
    Ok(Json(c.session.remove_member(&role, &user).await?.into()))
}
